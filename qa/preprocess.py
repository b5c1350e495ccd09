"""Preprocessing as a checkpoint records it, turned into torchvision transforms.

Two stages, kept apart on purpose: `to_unit_tensor` decodes, resizes and crops to a float
image in [0, 1] (where perturbations act, so a corruption means the same for every model);
`normalize` is the model's own last step.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
    """PIL image -> float32 CHW tensor in [0, 1], RGB, resized and centre-cropped."""
    import torch
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(int(preprocessing["resize"]), antialias=True),
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
