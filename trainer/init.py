"""Where a run's weights start: pretrained torchvision or timm weights (trainer.timm_weights),
one of our checkpoints, a state_dict, or nothing; and which parameters train, at which
learning rate."""

import os
from pathlib import Path

import torch
from torch import nn

from qa.architectures import classifier_head, without_ddp_prefix
from qa.checkpoint_meta import FORMAT, validate_checkpoint
from qa.errors import InputError
from qa.preprocess import make_preprocessing
from qa.timm_models import is_timm
from qa.torchfile import load_torch_file, read_file, unpickle


def pretrained(name: str, arch: str) -> tuple[dict, dict, dict]:
    """--weights: the state_dict from the local cache, the preprocessing the weights were
    trained with, and the origin the checkpoint records (kind, name, file)."""
    if is_timm(arch):
        from trainer import timm_weights

        return timm_weights.pretrained(name, arch)
    weights = resolve_weights(name, arch)
    state = load_weights(weights)
    preset = weights.transforms()
    preprocessing = make_preprocessing(
        preset.crop_size[0], preset.resize_size[0], preset.mean, preset.std
    )
    origin = {"kind": "weights", "name": str(weights), "file": str(weights_path(weights))}
    return state, preprocessing, origin


def resolve_weights(name: str, arch: str):
    """The torchvision weights enum member for --weights (a full name, or DEFAULT and the like).

    Weights made for another architecture are bad input: their tensors could not fit.
    """
    import torchvision

    try:
        family = torchvision.models.get_model_weights(arch)
    except (KeyError, ValueError):
        raise InputError(f"--weights: architecture {arch!r} has no torchvision weights") from None
    short = name.rpartition(".")[2]
    if short not in family.__members__:
        raise InputError(
            f"--weights: {name!r} is not a weight of {arch} (expected one of "
            f"{', '.join(f'{family.__name__}.{m}' for m in family.__members__)})"
        )
    if "." in name and name.partition(".")[0] != family.__name__:
        raise InputError(f"--weights: {name!r} belongs to another architecture than {arch}")
    return family[short]


def weights_path(weights) -> Path:
    """Where torch hub caches this weights file: we read it from there and never download."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def load_weights(weights) -> dict:
    """The state_dict of torchvision weights from the local hub cache, or one line saying
    exactly which file to place where."""
    path = weights_path(weights)
    if not path.is_file():
        raise InputError(
            f"--weights {weights}: {path} not found; download {weights.url} and place it there "
            "(the trainer never downloads)"
        )
    return load_torch_file(path)


def load_init(path: str) -> tuple[dict, dict]:
    """The state_dict in --init (our checkpoint or a plain state_dict) and what it was.

    The recorded sha256 is that of the bytes the weights were read from.
    """
    blob = read_file(path)
    obj = unpickle(blob)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        state = validate_checkpoint(obj, path)["state_dict"]
        kind = "qa-checkpoint"
    else:
        state, kind = obj, "state_dict"
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputError(
            f"--init {path}: expected a qa checkpoint or a state_dict (names to tensors)"
        )
    return without_ddp_prefix(state), {"kind": kind, "path": str(path), "sha256": blob.digest}


def load_backbone(model: nn.Module, state: dict, source: str) -> bool:
    """Copy `state` into `model`, keeping the model's fresh head if the head's shape differs.

    Returns whether the head was kept fresh. Any other missing, unexpected or misshapen
    tensor means the weights are for a different network: one line naming the key.
    """
    head, _ = classifier_head(model)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise InputError(
            f"{source}: weights do not fit this architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    fresh_head = False
    for key, tensor in state.items():
        if tensor.shape == own[key].shape:
            continue
        if key.startswith(head + "."):
            fresh_head = True
            continue
        raise InputError(
            f"{source}: {key} has shape {tuple(tensor.shape)}, "
            f"the model expects {tuple(own[key].shape)}"
        )
    keep = {k: v for k, v in state.items() if not (fresh_head and k.startswith(head + "."))}
    model.load_state_dict(keep, strict=False)
    return fresh_head


def freeze_backbone(model: nn.Module) -> None:
    """Stop gradients to everything but the classification head."""
    head, _ = classifier_head(model)
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(head + "."))


def hold_frozen_norms(model: nn.Module) -> None:
    """Keep normalisation layers whose parameters are frozen in eval mode.

    Otherwise a "frozen" backbone would still drift through its BatchNorm running statistics.
    """
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        is_norm = isinstance(module, nn.modules.batchnorm._BatchNorm)
        if is_norm and params and not any(p.requires_grad for p in params):
            module.eval()


def param_groups(model: nn.Module, lr: float, backbone_lr: float, weight_decay: float) -> list:
    """AdamW parameter groups: the head at `lr`, the backbone at `backbone_lr` (discriminative
    learning rates), without weight decay on norms and biases (1-D tensors)."""
    head, _ = classifier_head(model)
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (name.startswith(head + "."), param.ndim > 1)
            groups.setdefault(key, []).append(param)
    return [
        {
            "params": params,
            "lr": lr if is_head else backbone_lr,
            "weight_decay": weight_decay if decays else 0.0,
        }
        for (is_head, decays), params in sorted(groups.items())
    ]


def make_optimizer(model: nn.Module, lr: float, backbone_lr: float, weight_decay: float):
    """AdamW over `param_groups`, fused: one pass over each tensor per step.

    The default (for-loop) AdamW makes about six passes and allocates parameter-sized
    temporaries that the allocator hands back to the kernel and faults in again at the next
    step; for resnet18 on one CPU thread that measured 60 ms and ~12,000 page faults a step
    against 14 ms and none fused, a third of a training step (bench/train_throughput.py).
    """
    return torch.optim.AdamW(param_groups(model, lr, backbone_lr, weight_decay), lr=lr, fused=True)
