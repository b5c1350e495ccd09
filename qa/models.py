"""Loading models: qa's checkpoint format (validated by qa.checkpoint_meta), and every other
format qa accepts: plain state_dicts and, only with --trust-checkpoint, pickled modules,
TorchScript and torch.export archives.

A file is read once (qa.torchfile): a LoadedModel's digest is the sha256 of the bytes its
weights came from. Architectures are torchvision's, by name, built with random weights and
never downloaded; a checkpoint's weights (shapes, dtypes) and class names must fit the
architecture it names, or loading is one InputError line.
"""

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qa import suite_errors as err
from qa.checkpoint_meta import FORMAT, FORMAT_VERSION, kind_of, validate_checkpoint
from qa.errors import InputError, UntrustedCheckpointError
from qa.io import atomic_path
from qa.torchfile import KINDS, FileBytes, archive_kind, load_trusted, read_file, unpickle

# Constructor arguments that would ask torchvision for pretrained weights: a checkpoint
# carries its own weights, and qa never downloads.
PRETRAINED_KWARGS = ("weights", "weights_backbone", "pretrained", "pretrained_backbone")
TRUST_HINT = "pass --trust-checkpoint to load it anyway, if you trust its author"


@dataclass
class LoadedModel:
    """A model ready for inference, with everything needed to feed and read it."""

    module: nn.Module
    arch: str
    class_names: list[str]
    preprocessing: dict
    provenance: dict = field(default_factory=dict)
    temperature: float = 1.0
    digest: str = ""
    path: str = ""


def classification_architectures() -> list[str]:
    """Names of torchvision's classification architectures, as `torchvision.models.get_model` takes."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_model(arch: str, arch_kwargs: dict | None = None) -> nn.Module:
    """Construct a torchvision classification architecture by name, with random weights.

    Unknown names, pretrained-weight arguments and keyword arguments the architecture rejects
    are InputError: the name and arguments come from a file or the command line.
    """
    import torchvision

    known = classification_architectures()
    if arch not in known:
        near = difflib.get_close_matches(arch, known, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise InputError(f"unknown architecture {arch!r} (expected a torchvision model name{hint})")
    kwargs = dict(arch_kwargs or {})
    for key in PRETRAINED_KWARGS:
        if key in kwargs:
            raise InputError(
                f"arch_kwargs.{key}: expected no pretrained weights (qa never downloads; the "
                f"checkpoint carries its weights), found {err.found(kwargs[key])}"
            )
    try:
        return torchvision.models.get_model(arch, weights=None, **kwargs)
    except Exception as exc:
        if not kwargs:
            raise
        # the arguments are the file's data: valid ones never fail (TypeError, ValueError, ...)
        raise InputError(
            f"arch_kwargs: expected arguments {arch} accepts, found {kwargs} ({_first_line(exc)})"
        ) from None


def classifier_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """The model's final classification layer: the last nn.Linear it registers.

    That is `fc` for ResNets and RegNets, `classifier.N` for MobileNets, EfficientNets,
    ConvNeXts and VGGs, `heads.head` for ViTs, so one rule serves every torchvision classifier.
    """
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InputError(f"{type(model).__name__} has no nn.Linear classification layer")
    return linears[-1]


def replace_head(model: nn.Module, num_classes: int) -> str:
    """Swap the classification layer for a freshly initialised one with `num_classes` outputs."""
    name, old = classifier_head(model)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    return name


def _tensors_for_saving(value: Any) -> Any:
    # numpy arrays are not loadable with weights_only=True; tensors are.
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: _tensors_for_saving(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_tensors_for_saving(v) for v in value)
    return value


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    """Write a checkpoint dict atomically, stamping the format and version; it must validate."""
    payload = validate_checkpoint(
        {"format": FORMAT, "format_version": FORMAT_VERSION, **checkpoint}, path
    )
    with atomic_path(path) as tmp:
        torch.save(_tensors_for_saving(payload), tmp)


def read_checkpoint(path: str | Path) -> dict:
    """Read one of our checkpoints without executing code from the file.

    Refuses, with one line naming the file, a missing file, a file that is not a torch
    archive, one that would need arbitrary unpickling, and a dict that is not our format.
    """
    return validate_checkpoint(unpickle(read_file(path)), path)


def model_from_checkpoint(ckpt: dict, path: str | Path = "") -> nn.Module:
    """Rebuild the module a checkpoint describes and load its weights (strictly).

    The module is built on the meta device and the checkpoint's tensors are assigned to it,
    which skips random initialisation (most of the cost of a warm-cache run); an architecture
    with state outside its state_dict is built normally instead. Floating-point weights are
    cast to the module's dtypes; weights of another kind or shape are InputError.
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
            f"{path}: weights do not fit {arch}({kwargs}): {_first_line(exc)}"
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


def _check_outputs(module: nn.Module, names: list[str], path, source: str) -> None:
    """One class name per output of the classification head, or InputError."""
    try:
        head, layer = classifier_head(module)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    if layer.out_features != len(names):
        raise InputError(
            f"{path}: {source}: expected {layer.out_features} names (one per output of "
            f"{head}), found {len(names)}"
        )


def load_model(path: str | Path) -> LoadedModel:
    """Load a qa checkpoint into a ready-to-run model in eval mode."""
    blob = read_file(path)
    return loaded_model(validate_checkpoint(unpickle(blob), path), blob.path, blob.digest)


def loaded_model(ckpt: dict, path: str | Path, digest: str = "") -> LoadedModel:
    """The ready-to-run model of a validated checkpoint dict read from `path` (bytes `digest`)."""
    module = model_from_checkpoint(ckpt, path)
    _check_outputs(module, ckpt["class_names"], path, "class_names")
    return LoadedModel(
        module=module,
        arch=ckpt["arch"],
        class_names=list(ckpt["class_names"]),
        preprocessing=dict(ckpt["preprocessing"]),
        provenance=dict(ckpt.get("provenance", {})),
        temperature=float(ckpt.get("temperature", 1.0)),
        digest=digest,
        path=str(path),
    )


# Other formats a user may bring: the suite's `model:` names what the file does not say.
SPEC_HINT = "add `model: {arch: NAME, arch_kwargs: {num_classes: N}}` to the suite"
NAMES_HINT = "add `model: {arch: NAME, class_names: [...], preprocessing: {...}}` to the suite"
FORMAT_NAMES = {"torchscript": "torchscript", "export": "torch.export", "pickle": "pickled module"}


def load_any(path: str | Path, model_spec=None, trust: bool = False) -> LoadedModel:
    """Load any checkpoint qa accepts into a ready-to-run LoadedModel.

    Our self-describing format; a plain state_dict (with `model_spec`, the suite's `model:`,
    naming the architecture); and, only with `trust` since loading them runs code from the
    file, TorchScript and torch.export archives and pickled modules (class names and
    preprocessing from `model_spec`). The file is read once: `digest` is the sha256 of the
    bytes that were loaded.
    """
    blob = read_file(path)
    kind = archive_kind(blob.data)
    if kind == "pickle":
        try:
            obj = unpickle(blob)
        except UntrustedCheckpointError as exc:
            if not trust:
                raise UntrustedCheckpointError(f"{exc}; {TRUST_HINT}") from None
            obj = load_trusted(blob, kind)
    elif trust:
        obj = load_trusted(blob, kind)
    else:
        raise UntrustedCheckpointError(
            f"{blob.path}: refusing to load a {KINDS[kind]}: loading one runs code from the "
            f"file; {TRUST_HINT}"
        )
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return loaded_model(validate_checkpoint(obj, blob.path), blob.path, blob.digest)
    if isinstance(obj, nn.Module):
        if kind != "export":  # an exported program's module has no train mode to leave
            obj.eval()
        return _described_by_spec(obj, FORMAT_NAMES[kind], model_spec, blob)
    return _from_state_dict(_as_state_dict(obj, blob.path), model_spec, blob)


def _described_by_spec(module: nn.Module, kind: str, spec, blob: FileBytes) -> LoadedModel:
    """A module whose file carries no class names or preprocessing: the suite supplies them."""
    names = spec.resolved_class_names() if spec is not None else None
    if names is None:
        raise InputError(f"{blob.path}: a {kind} file does not name its classes; {NAMES_HINT}")
    return LoadedModel(
        module=module,
        arch=spec.arch,
        class_names=names,
        preprocessing=spec.preprocessing.model_dump(),
        provenance={"format": kind},
        digest=blob.digest,
        path=str(blob.path),
    )


def _as_state_dict(obj: Any, path: Path) -> dict:
    """The weights of a plain state_dict, or of a training dict holding one under a usual key."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise InputError(
            f"{path}: expected a qa checkpoint, a state_dict, TorchScript or torch.export "
            f"archive, found {kind_of(obj)}"
        )
    # DistributedDataParallel saves every key under "module."
    if all(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def _from_state_dict(state: dict, spec, blob: FileBytes) -> LoadedModel:
    """Build the suite's architecture and load a plain state_dict into it (strictly)."""
    path = blob.path
    if spec is None:
        raise InputError(
            f"{path}: a plain state_dict does not say which architecture it is; {SPEC_HINT}"
        )
    kwargs = dict(spec.arch_kwargs)
    names = spec.resolved_class_names()
    if "num_classes" not in kwargs:
        kwargs["num_classes"] = len(names) if names else _head_outputs(spec.arch, state, path)
    ckpt = {"arch": spec.arch, "arch_kwargs": kwargs, "state_dict": state}
    module = model_from_checkpoint(ckpt, path)
    names = names or [str(i) for i in range(classifier_head(module)[1].out_features)]
    _check_outputs(module, names, path, "the suite's model.class_names")
    return LoadedModel(
        module=module,
        arch=spec.arch,
        class_names=names,
        preprocessing=spec.preprocessing.model_dump(),
        provenance={"format": "state_dict"},
        digest=blob.digest,
        path=str(path),
    )


def _head_outputs(arch: str, state: dict, path: Path) -> int:
    """The number of classes a state_dict's classification layer produces."""
    try:
        with torch.device("meta"):
            name, _ = classifier_head(build_model(arch))
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    weight = state.get(f"{name}.weight")
    if weight is None or weight.ndim != 2:
        raise InputError(
            f"{path}: no {name}.weight in the state_dict to count classes; {SPEC_HINT}"
        )
    return int(weight.shape[0])


def describe(path: str | Path) -> dict:
    """The metadata of a checkpoint as plain data (no weights), for `qa describe`.

    `sha256` is the digest of the bytes the metadata was read from.
    """
    blob = read_file(path)
    ckpt = validate_checkpoint(unpickle(blob), path)
    n_params = sum(t.numel() for t in ckpt["state_dict"].values())
    prov = dict(ckpt.get("provenance", {}))
    fp = prov.get("data_fingerprint")
    if isinstance(fp, dict):
        prov["data_fingerprint"] = {
            k: v for k, v in fp.items() if k in ("digest", "n_files", "n_unique", "kind")
        }
    return {
        "path": str(path),
        "sha256": blob.digest,
        "format_version": ckpt["format_version"],
        "arch": ckpt["arch"],
        "arch_kwargs": ckpt["arch_kwargs"],
        "parameters": n_params,
        "class_names": list(ckpt["class_names"]),
        "preprocessing": ckpt["preprocessing"],
        "temperature": ckpt.get("temperature", 1.0),
        "resumable": "train_state" in ckpt,
        "provenance": prov,
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
