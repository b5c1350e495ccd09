"""timm classifiers, named `timm/<name>` wherever qa takes an architecture name.

`<name>` is a timm model name, optionally with a pretrained tag (`timm/resnet18.a1_in1k`): the
tag picks the pretrained config timm builds the architecture from, never weights. Models are
built with random weights (`pretrained=False`) and never downloaded: the checkpoint carries
its weights. timm is an optional extra, imported only when a timm name is used.

A timm model's pretrained config says how its images were prepared (input size, crop_pct,
interpolation, mean, std); `preprocessing` turns it into qa's record as timm's own eval
transform does it: resize the shorter side to floor(size / crop_pct), centre-crop `size`.
The few configs that squash or pad instead of centre-cropping (`crop_mode`) are given the
centre crop, the one qa applies.
"""

import difflib
import math

from torch import nn

from qa.errors import InputError

PREFIX = "timm/"
INSTALL_HINT = "pip install 'qa[timm]'"
# create_model arguments that load weights from elsewhere than the checkpoint, or say where from
PRETRAINED_KWARGS = (
    "pretrained",
    "pretrained_cfg",
    "pretrained_cfg_overlay",
    "pretrained_strict",
    "checkpoint_path",
    "cache_dir",
)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def is_timm(arch: str) -> bool:
    """Whether an architecture name is a timm one (`timm/<name>`)."""
    return arch.startswith(PREFIX)


def import_timm():
    """The timm package, or one InputError line saying how to install it."""
    try:
        import timm
    except ImportError:
        raise InputError(f"timm architectures need timm: {INSTALL_HINT}") from None
    return timm


def model_name(arch: str) -> str:
    """The timm model name in `timm/<name>`, checked against timm's registry (near matches
    offered for a typo)."""
    timm = import_timm()
    name = arch.removeprefix(PREFIX)
    if not timm.is_model(name):
        near = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(PREFIX + n for n in near)}?" if near else ""
        raise InputError(
            f"unknown architecture {arch!r} (expected timm/ and a timm model name{hint})"
        )
    if "." in name:
        pretrained_cfg(arch)  # an unknown tag is InputError
    return name


def create(arch: str, **kwargs) -> nn.Module:
    """A timm model with random weights, the classification head sized by `num_classes`."""
    return import_timm().create_model(model_name(arch), pretrained=False, **kwargs)


def pretrained_cfg(arch: str) -> dict | None:
    """timm's pretrained config of `timm/<name>[.<tag>]` (the default tag's without one), as a
    dict; None for a model timm registers no config for. An unknown tag is InputError."""
    timm = import_timm()
    name = arch.removeprefix(PREFIX)
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:
        base = name.partition(".")[0]
        tags = [n.partition(".")[2] for n in timm.list_pretrained(base + ".*")]
        raise InputError(
            f"unknown pretrained tag in {arch!r} (expected one of {', '.join(tags)})"
        ) from None
    return None if cfg is None else cfg.to_dict()


def preprocessing(cfg: dict) -> dict:
    """qa's preprocessing record (qa.preprocess.Preprocessing) for a timm pretrained config.

    An interpolation qa does not offer falls back to bilinear; a non-square input size takes
    its width (qa crops squares).
    """
    size = int(cfg["input_size"][-1])
    crop_pct = cfg.get("crop_pct") or 0.875  # timm's DEFAULT_CROP_PCT
    interpolation = cfg.get("interpolation")
    return {
        "resize": math.floor(size / crop_pct),
        "crop": size,
        "mean": [float(m) for m in cfg["mean"]],
        "std": [float(s) for s in cfg["std"]],
        "interpolation": interpolation if interpolation in INTERPOLATIONS else "bilinear",
    }


def default_preprocessing(arch: str) -> dict | None:
    """The preprocessing a timm model's pretrained config implies, or None if it has none."""
    cfg = pretrained_cfg(arch)
    return None if cfg is None else preprocessing(cfg)
