"""Classifiers by name (torchvision's, and timm's as `timm/<name>`), and weights fitted to them.

Architectures are built with random weights and never downloaded; timm's specifics live in
qa.timm_models. Weights (shapes, dtypes) and class names must fit the architecture they are
loaded into, or loading is one InputError line naming the file: every checkpoint format qa
reads (qa.checkpoint, qa.formats) goes through `model_from_checkpoint` and `check_outputs`.
"""

import difflib
from pathlib import Path

import torch
from torch import nn

from qa import suite_errors as err
from qa import timm_models
from qa.errors import InputError, first_line
from qa.preprocess import Preprocessing

# Constructor arguments that would ask torchvision for pretrained weights: a checkpoint
# carries its own weights, and qa never downloads.
PRETRAINED_KWARGS = ("weights", "weights_backbone", "pretrained", "pretrained_backbone")


def classification_architectures() -> list[str]:
    """Names of torchvision's classification architectures, as `torchvision.models.get_model` takes."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_model(arch: str, arch_kwargs: dict | None = None) -> nn.Module:
    """Construct a classification architecture by name, with random weights: a torchvision
    name, or `timm/<name>` for a timm model (qa.timm_models).

    Unknown names, pretrained-weight arguments and keyword arguments the architecture rejects
    are InputError: the name and arguments come from a file or the command line.
    """
    kwargs = dict(arch_kwargs or {})
    if timm_models.is_timm(arch):
        _refuse_pretrained(kwargs, timm_models.PRETRAINED_KWARGS)
        construct = timm_models.create
    else:
        _check_torchvision_name(arch)
        _refuse_pretrained(kwargs, PRETRAINED_KWARGS)
        construct = _torchvision_model
    try:
        return construct(arch, **kwargs)
    except InputError:
        raise
    except Exception as exc:
        if not kwargs:
            raise
        # the arguments are the file's data: valid ones never fail (TypeError, ValueError, ...)
        raise InputError(
            f"arch_kwargs: expected arguments {arch} accepts, found {kwargs} ({first_line(exc)})"
        ) from None


def _check_torchvision_name(arch: str) -> None:
    known = classification_architectures()
    if arch not in known:
        near = difflib.get_close_matches(arch, known, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise InputError(
            f"unknown architecture {arch!r} (expected a torchvision model name, or timm/NAME{hint})"
        )


def _refuse_pretrained(kwargs: dict, names: tuple[str, ...]) -> None:
    for key in names:
        if key in kwargs:
            raise InputError(
                f"arch_kwargs.{key}: expected no pretrained weights (qa never downloads; the "
                f"checkpoint carries its weights), found {err.found(kwargs[key])}"
            )


def _torchvision_model(arch: str, **kwargs) -> nn.Module:
    import torchvision

    return torchvision.models.get_model(arch, weights=None, **kwargs)


def spec_preprocessing(arch: str, given: Preprocessing) -> dict:
    """The preprocessing of a model the suite's `model:` describes: the keys it gives, the rest
    from a timm model's pretrained config, else ImageNet's defaults (Preprocessing's)."""
    defaults = timm_models.default_preprocessing(arch) if timm_models.is_timm(arch) else None
    return {**(defaults or Preprocessing().model_dump()), **given.model_dump(exclude_unset=True)}


def classifier_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """The model's final classification layer: the last nn.Linear it registers.

    That is `fc` for ResNets and RegNets, `classifier.N` for MobileNets, EfficientNets,
    ConvNeXts and VGGs, `heads.head` for ViTs, so one rule serves every torchvision classifier.
    """
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InputError(f"{type(model).__name__} has no nn.Linear classification layer")
    return linears[-1]


def model_from_checkpoint(ckpt: dict, path: str | Path = "") -> nn.Module:
    """Rebuild the module a checkpoint describes and load its weights (strictly).

    `ckpt` needs `arch`, `arch_kwargs` and `state_dict`: a qa checkpoint, or what the suite
    says of a plain state_dict. The module is built on the meta device and the checkpoint's
    tensors are assigned to it, which skips random initialisation (most of the cost of a
    warm-cache run); an architecture with state outside its state_dict is built normally
    instead. Floating-point weights are cast to the module's dtypes; weights of another kind
    or shape are InputError.
    """
    arch, kwargs = ckpt["arch"], ckpt["arch_kwargs"]
    try:
        with torch.device("meta"):
            module = build_model(arch, kwargs)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    state = _cast_to(module, ckpt["state_dict"], path)
    try:
        module.load_state_dict(state, assign=True)
        if any(t.is_meta for t in (*module.parameters(), *module.buffers())):
            module = build_model(arch, kwargs)
            module.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(
            f"{path}: weights do not fit {arch}({kwargs}): {first_line(exc)}"
        ) from None
    return module.eval()


def _cast_to(module: nn.Module, state: dict, path) -> dict:
    """`state` with floating-point tensors in the dtypes of `module`'s own; other kinds refused."""
    own = module.state_dict()
    out = {}
    for key, tensor in state.items():
        want = own.get(key)
        if want is not None and tensor.dtype != want.dtype:
            if not (tensor.is_floating_point() and want.is_floating_point()):
                raise InputError(
                    f"{path}: state_dict.{key}: expected a {want.dtype} tensor, found {tensor.dtype}"
                )
            tensor = tensor.to(want.dtype)
        out[key] = tensor
    return out


def without_ddp_prefix(state: dict) -> dict:
    """A state_dict saved from a DistributedDataParallel wrapper, which prefixes every name with
    "module.", under the names of the bare model; any other state_dict as it is."""
    if state and all(k.startswith("module.") for k in state):
        return {k.removeprefix("module."): v for k, v in state.items()}
    return state


def check_outputs(module: nn.Module, names: list[str], path, source: str) -> None:
    """One class name per output of the classification head, or InputError naming `source`."""
    try:
        head, layer = classifier_head(module)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    if layer.out_features != len(names):
        raise InputError(
            f"{path}: {source}: expected {layer.out_features} names (one per output of "
            f"{head}), found {len(names)}"
        )
