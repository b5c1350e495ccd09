"""The gallery's pictures: decoded pixels as small data URIs a report page embeds, and the
model's input as a person sees it (qa.gallery, qa.gallery_strips). No model runs here.

A picture is a function of the file's bytes, how it is shown and qa's version, so the data
URIs are kept in the run's cache folder (`kept_uris`) by what they are made from: a warm run
reads no image file for its mistakes, flips and pairs, and makes no perturbation strip (it
decodes only the one image a strip is chosen from). An entry that fails its
checksum, or does not hold as many data URIs as it should, is made again.
"""

import base64
import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa import cache
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


def kept_uris(
    cache_dir: str | Path | None,
    parts: dict | None,
    count: int,
    make: Callable[[], list[str] | None],
) -> list[str] | None:
    """`count` data URIs made by `make()` (None: nothing to show), or those `cache_dir` kept
    for `parts` (JSON values naming what they are made from; None: not kept)."""
    key = None if cache_dir is None or parts is None else cache.entry_key({"pictures": parts})
    if key is not None:
        kept = cache.read_table(cache_dir, key)
        uris = None if kept is None else kept.get("uris")
        if (
            isinstance(uris, list)
            and len(uris) == count
            and all(isinstance(u, str) and u.startswith("data:image/") for u in uris)
        ):
            return uris
    made = make()
    if key is not None and made is not None and len(made) == count:
        with contextlib.suppress(OSError):  # the cache only saves time
            cache.write_table(cache_dir, key, {"uris": made})
    return made
