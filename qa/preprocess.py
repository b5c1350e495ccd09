"""Preprocessing as a checkpoint or a suite records it, validated, and turned into transforms.

`Preprocessing` is the one schema for both the checkpoint's `preprocessing` (qa.checkpoint) and
the suite's `model.preprocessing` (qa.suite). Three stages, kept apart on purpose: `load_rgb`
(or `decode_bytes`) decodes a file to float RGB in [0, 1] (the one decoder, shared by every
view of an image); `to_unit_tensor` resizes (with the recorded interpolation) and crops it
(where perturbations act, so a corruption means the same for every model); `normalize` is the
model's own last step.
"""

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Mean = Annotated[float, Field(allow_inf_nan=False)]
Std = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Preprocessing(BaseModel):
    """How images are fed to a model: resize, centre crop, per-channel normalisation.

    Defaults (ImageNet's) serve a suite's `model:`; a checkpoint must record every key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    resize: int = Field(256, ge=1, description="shorter side after resizing, in pixels")
    crop: int = Field(224, ge=1, description="centre crop size, in pixels")
    mean: list[Mean] = Field(list(IMAGENET_MEAN), min_length=3, max_length=3)
    std: list[Std] = Field(list(IMAGENET_STD), min_length=3, max_length=3)
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"


def make_preprocessing(
    size: int, resize: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD
) -> dict:
    """The preprocessing record stored in checkpoints: resize shorter side, centre crop, normalise."""
    return {
        "resize": int(resize or size),
        "crop": int(size),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "interpolation": "bilinear",
    }


def to_unit_tensor(preprocessing: dict) -> "UnitTensor":
    """Decoded image (`load_rgb`) -> float32 CHW tensor in [0, 1], resized (with the recorded
    interpolation; bicubic's overshoot is clipped back into [0, 1]) and centre-cropped."""
    return UnitTensor(
        int(preprocessing["resize"]), int(preprocessing["crop"]), preprocessing["interpolation"]
    )


class UnitTensor:
    """`to_unit_tensor`'s transform: torchvision's resize and centre-crop kernels called
    directly, each image once. A v2.Compose of ToImage, Resize, CenterCrop, ToDtype and a clamp
    gives the same tensors but spends more time in its per-call dispatch than in the kernels
    at small sizes (4x at 32 px), on every image of every pass. A plain class, so DataLoader
    workers can pickle it."""

    def __init__(self, resize: int, crop: int, interpolation: str):
        self.resize, self.crop, self.interpolation = resize, crop, interpolation

    def __call__(self, pixels: np.ndarray):
        import torch
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        image = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
        image = image.permute(2, 0, 1)
        height, width = image.shape[-2:]
        if min(height, width) == self.resize and height == width == self.crop:
            # both kernels would return it untouched, and decoded pixels lie in [0, 1]: the
            # common case of data stored at the model's size, spared their dispatch
            return image.contiguous()
        mode = InterpolationMode(self.interpolation)
        image = F.resize(image, [self.resize], interpolation=mode, antialias=True)
        image = F.center_crop(image, [self.crop])
        return image.clamp(0.0, 1.0).contiguous()


def normalize(preprocessing: dict):
    """The model's normalisation, applied to batches of [0, 1] images."""
    from torchvision.transforms import v2

    return v2.Normalize(mean=list(preprocessing["mean"]), std=list(preprocessing["std"]))


def load_rgb(path) -> np.ndarray:
    """Open an image file and decode it with `decode_rgb`: float32 RGB (H, W, 3) in [0, 1]."""
    from PIL import Image

    with Image.open(path) as img:
        return decode_rgb(img)


def decode_bytes(data: bytes) -> np.ndarray:
    """An encoded image (qa.data.read_bytes) decoded with `decode_rgb`."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return decode_rgb(img)


def decode_rgb(img) -> np.ndarray:
    """A PIL image's pixels as float32 RGB (H, W, 3) in [0, 1], scaled by its mode's real range.

    Every view of an image (inference, training, profile statistics, perceptual hashes,
    thumbnails) decodes through here, so no two can see different pixels. 8-bit modes (1, L,
    P, RGB, CMYK, YCbCr, ...) go through PIL's RGB conversion and / 255; PIL itself reduces
    16-bit RGB and RGBA to 8 bits. Integer greyscale (I;16*, and I, which PIL also gives
    16-bit PGM files) is / 65535, where PIL's RGB conversion would clip it at 255. Float
    greyscale (F) is taken as already in [0, 1]. Alpha is dropped, not composited, as
    torchvision's default loader does, so images match a typical training pipeline. Values
    outside the mode's range (32-bit integers, floats beyond [0, 1] or NaN) raise ValueError:
    any guessed range would show the model another image.
    """
    if img.mode == "F" or img.mode.startswith("I"):
        grey = np.asarray(img)
        top = 1.0 if img.mode == "F" else 65535
        lowest, highest = grey.min(), grey.max()
        if not (lowest >= 0 and highest <= top):  # also false for NaN
            raise ValueError(
                f"mode {img.mode} pixel values from {lowest} to {highest}, "
                f"expected 0 to {top} (8-bit, 16-bit, or floats in [0, 1])"
            )
        unit = grey.astype(np.float32) / np.float32(top)
        return np.repeat(unit[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255)


def rgb8(pixels: np.ndarray):
    """Decoded pixels (`decode_rgb`) as an 8-bit RGB PIL image, for perceptual hashes and
    thumbnails; an 8-bit source comes back exactly."""
    from PIL import Image

    return Image.fromarray(np.round(pixels * 255).astype(np.uint8))
