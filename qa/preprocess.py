"""Preprocessing as a checkpoint or a suite records it, validated, and turned into transforms.

`Preprocessing` is the one schema for both the checkpoint's `preprocessing` (qa.models) and
the suite's `model.preprocessing` (qa.suite). Two stages, kept apart on purpose:
`to_unit_tensor` decodes, resizes and crops to a float image in [0, 1] (where perturbations
act, so a corruption means the same for every model); `normalize` is the model's own last step.
"""

from typing import Annotated, Literal

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


def to_unit_tensor(preprocessing: dict):
    """PIL image -> float32 CHW tensor in [0, 1], RGB, resized (with the recorded
    interpolation) and centre-cropped."""
    import torch
    from torchvision.transforms import v2

    mode = v2.InterpolationMode(preprocessing["interpolation"])
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(int(preprocessing["resize"]), interpolation=mode, antialias=True),
            v2.CenterCrop(int(preprocessing["crop"])),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def normalize(preprocessing: dict):
    """The model's normalisation, applied to batches of [0, 1] images."""
    from torchvision.transforms import v2

    return v2.Normalize(mean=list(preprocessing["mean"]), std=list(preprocessing["std"]))


def load_rgb(path):
    """Open an image file as RGB (grayscale and palette images are converted)."""
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")
