"""The gallery's pictures: decoded pixels as small data URIs a report page embeds, and the
model's input as a person sees it (qa.gallery, qa.gallery_strips). No model runs here."""

import base64
import io
from typing import TYPE_CHECKING

import numpy as np

from qa.preprocess import rgb8

if TYPE_CHECKING:
    import torch

MAX_SIDE = 80
JPEG_QUALITY = 85
RESAMPLING = {"bilinear": 2, "bicubic": 3, "nearest": 0}  # PIL.Image.Resampling's numbers


def shown_input(pixels: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Decoded pixels resized and centre-cropped as the model's input is (torchvision's sizes,
    crop offsets and zero padding), with PIL's antialiased filter of the same name instead of
    torch: a picture to look at, (crop, crop, 3) in [0, 1], not the evidence."""
    img = rgb8(pixels)
    width, height = img.size
    side, crop = int(preprocessing["resize"]), int(preprocessing["crop"])
    if width <= height:
        size = (side, int(side * height / width))
    else:
        size = (int(side * width / height), side)
    if size != img.size:
        img = img.resize(size, RESAMPLING[preprocessing.get("interpolation", "bilinear")])
    unit = np.asarray(img, dtype=np.float32) / np.float32(255)
    short_h, short_w = max(crop - unit.shape[0], 0), max(crop - unit.shape[1], 0)
    unit = np.pad(
        unit, ((short_h // 2, (short_h + 1) // 2), (short_w // 2, (short_w + 1) // 2), (0, 0))
    )
    top = round((unit.shape[0] - crop) / 2.0)
    left = round((unit.shape[1] - crop) / 2.0)
    return unit[top : top + crop, left : left + crop]


def image_uri(pixels: np.ndarray) -> str:
    """Decoded pixels (H, W, 3) in [0, 1] as a data URI: at most MAX_SIDE pixels a side (shrunk
    with a Lanczos filter), PNG or JPEG at JPEG_QUALITY, whichever is fewer bytes."""
    from PIL import Image

    img = rgb8(pixels)
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    encoded = []
    for fmt, options in (("png", {"optimize": True}), ("jpeg", {"quality": JPEG_QUALITY})):
        buffer = io.BytesIO()
        img.save(buffer, format=fmt.upper(), **options)
        encoded.append((len(buffer.getvalue()), fmt, buffer.getvalue()))
    _, fmt, blob = min(encoded)
    return f"data:image/{fmt};base64," + base64.b64encode(blob).decode("ascii")


def tensor_uri(image: "torch.Tensor") -> str:
    """A (3, H, W) float image in [0, 1] as a data URI (image_uri)."""
    return image_uri(image.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
