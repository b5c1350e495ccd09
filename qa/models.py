"""The checkpoint format: the trainer writes it, the engine reads it.

A checkpoint is a plain dict saved with `torch.save`, readable with `weights_only=True`:

    format            "qa-checkpoint"
    format_version    1
    arch, arch_kwargs torchvision architecture name and its constructor arguments
    class_names       in index order
    preprocessing     {"resize", "crop", "mean", "std", "interpolation"}
    state_dict        the weights
    provenance        config, metrics, versions, git commit, creation time, data fingerprint
    temperature       optional: divides the logits (set by calibration)
    train_state       optional: optimiser, scheduler, RNG states and epoch, for --resume
"""

import difflib
import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qa.errors import InputError, UntrustedCheckpointError
from qa.io import atomic_path

FORMAT = "qa-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("arch", "arch_kwargs", "class_names", "preprocessing", "state_dict")


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
    """Construct a torchvision classification architecture by name, with random weights."""
    import torchvision

    known = classification_architectures()
    if arch not in known:
        near = difflib.get_close_matches(arch, known, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise InputError(f"unknown architecture {arch!r} (expected a torchvision model name{hint})")
    return torchvision.models.get_model(arch, weights=None, **(arch_kwargs or {}))


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


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, streamed: the identity of a checkpoint in caches and reports."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    """Write a checkpoint dict atomically, stamping the format and version."""
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint is missing {missing}")
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **checkpoint}
    with atomic_path(path) as tmp:
        torch.save(_tensors_for_saving(payload), tmp)


def load_torch_file(path: str | Path) -> Any:
    """Unpickle a torch file with `weights_only=True`: tensors and plain containers, never code.

    The one safe loader for our checkpoints, plain state_dicts and torchvision weight files;
    refuses, with one line naming the file, a missing file, a file that is not a torch archive
    and one that would need arbitrary unpickling (UntrustedCheckpointError).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # "Unsupported global" (or "unsupported GLOBAL ... is blocked", for os, subprocess and
        # the like): the file names something to import. Any other unpickling error (torch's
        # message mentions weights_only for every one) is a damaged or foreign file.
        if "unsupported global" in str(exc).lower():
            raise UntrustedCheckpointError(
                f"{path}: refusing to load: the file needs arbitrary unpickling (code execution); "
                "expected a qa checkpoint or a state_dict"
            ) from None
        raise InputError(f"{path}: not a readable torch checkpoint ({_first_line(exc)})") from None
    except Exception as exc:
        raise InputError(f"{path}: not a readable torch checkpoint ({_first_line(exc)})") from None


def read_checkpoint(path: str | Path) -> dict:
    """Read one of our checkpoints without executing code from the file.

    Refuses, with one line naming the file, a missing file, a file that is not a torch
    archive, one that would need arbitrary unpickling, and a dict that is not our format.
    """
    path = Path(path)
    return validate_checkpoint(load_torch_file(path), path)


def validate_checkpoint(obj: Any, path: str | Path) -> dict:
    """Return `obj` if it is one of our checkpoints (format, version, keys), else InputError."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(
            f"{path}: expected a qa checkpoint (format {FORMAT!r}), found {_kind(obj)}"
        )
    if obj.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(
            f"{path}: checkpoint format version {obj['format_version']} is newer than this qa "
            f"reads ({FORMAT_VERSION}); upgrade qa"
        )
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise InputError(f"{path}: qa checkpoint is missing keys {missing}")
    return obj


def model_from_checkpoint(ckpt: dict, path: str | Path = "") -> nn.Module:
    """Rebuild the module a checkpoint describes and load its weights (strictly).

    The module is built on the meta device and the checkpoint's tensors are assigned to it,
    which skips random initialisation (most of the cost of a warm-cache run); an architecture
    with state outside its state_dict is built normally instead.
    """
    with torch.device("meta"):
        module = build_model(ckpt["arch"], ckpt["arch_kwargs"])
    try:
        module.load_state_dict(ckpt["state_dict"], assign=True)
        if any(t.is_meta for t in (*module.parameters(), *module.buffers())):
            module = build_model(ckpt["arch"], ckpt["arch_kwargs"])
            module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise InputError(
            f"{path}: weights do not fit {ckpt['arch']}({ckpt['arch_kwargs']}): {_first_line(exc)}"
        ) from None
    return module.eval()


def load_model(path: str | Path) -> LoadedModel:
    """Load a qa checkpoint into a ready-to-run model in eval mode."""
    return _loaded_checkpoint(read_checkpoint(path), path)


def _loaded_checkpoint(ckpt: dict, path: str | Path) -> LoadedModel:
    return LoadedModel(
        module=model_from_checkpoint(ckpt, path),
        arch=ckpt["arch"],
        class_names=list(ckpt["class_names"]),
        preprocessing=dict(ckpt["preprocessing"]),
        provenance=dict(ckpt.get("provenance", {})),
        temperature=float(ckpt.get("temperature", 1.0)),
        digest=file_digest(path),
        path=str(path),
    )


# Other formats a user may bring: the suite's `model:` names what the file does not say.
SPEC_HINT = "add `model: {arch: NAME, arch_kwargs: {num_classes: N}}` to the suite"
NAMES_HINT = "add `model: {arch: NAME, class_names: [...], preprocessing: {...}}` to the suite"


def archive_kind(path: str | Path) -> str:
    """What a checkpoint file is, from its zip members: "export", "torchscript" or "pickle".

    torch.export archives carry an `archive_format` member and TorchScript archives a `code/`
    tree; anything else (torch.save's zip or legacy format) is unpickled, safely by default.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "pickle"
    if any(n.rsplit("/", 1)[-1] == "archive_format" for n in names):
        return "export"
    if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    return "pickle"


def load_any(path: str | Path, model_spec=None, trust: bool = False) -> LoadedModel:
    """Load any checkpoint qa accepts into a ready-to-run LoadedModel.

    Our self-describing format; a plain state_dict (with `model_spec`, the suite's `model:`,
    naming the architecture); TorchScript and torch.export (.pt2) archives (class names and
    preprocessing from `model_spec`); a pickled nn.Module only with `trust`, since unpickling
    it runs code from the file. `digest` is always the sha256 of the file's bytes.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    kind = archive_kind(path)
    if kind == "export":
        module = _read_archive(path, lambda p: torch.export.load(p).module(), "torch.export")
        return _described_by_spec(module, "torch.export", model_spec, path)
    if kind == "torchscript":
        module = _read_archive(path, lambda p: torch.jit.load(p, map_location="cpu"), kind)
        return _described_by_spec(module.eval(), kind, model_spec, path)
    try:
        obj = load_torch_file(path)
    except UntrustedCheckpointError as exc:
        if not trust:
            raise UntrustedCheckpointError(
                f"{exc}; pass --trust-checkpoint to load it anyway, if you trust its author"
            ) from None
        obj = _read_archive(
            path, lambda p: torch.load(p, map_location="cpu", weights_only=False), "torch"
        )
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _loaded_checkpoint(validate_checkpoint(obj, path), path)
    if isinstance(obj, nn.Module):
        return _described_by_spec(obj.eval(), "pickled module", model_spec, path)
    return _from_state_dict(_as_state_dict(obj, path), model_spec, path)


def _read_archive(path: Path, read, what: str):
    try:
        return read(str(path))
    except Exception as exc:
        raise InputError(f"{path}: not a readable {what} archive ({_first_line(exc)})") from None


def _described_by_spec(module: nn.Module, kind: str, spec, path: Path) -> LoadedModel:
    """A module whose file carries no class names or preprocessing: the suite supplies them."""
    names = spec.resolved_class_names() if spec is not None else None
    if names is None:
        raise InputError(f"{path}: a {kind} file does not name its classes; {NAMES_HINT}")
    return LoadedModel(
        module=module,
        arch=spec.arch,
        class_names=names,
        preprocessing=spec.preprocessing.model_dump(),
        provenance={"format": kind},
        digest=file_digest(path),
        path=str(path),
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
            f"archive, found {_kind(obj)}"
        )
    # DistributedDataParallel saves every key under "module."
    if all(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def _from_state_dict(state: dict, spec, path: Path) -> LoadedModel:
    """Build the suite's architecture and load a plain state_dict into it (strictly)."""
    if spec is None:
        raise InputError(
            f"{path}: a plain state_dict does not say which architecture it is; {SPEC_HINT}"
        )
    kwargs = dict(spec.arch_kwargs)
    names = spec.resolved_class_names()
    if "num_classes" not in kwargs:
        kwargs["num_classes"] = len(names) if names else _head_outputs(spec.arch, state, path)
    ckpt = {"arch": spec.arch, "arch_kwargs": kwargs, "state_dict": state}
    return LoadedModel(
        module=model_from_checkpoint(ckpt, path),
        arch=spec.arch,
        class_names=names or [str(i) for i in range(kwargs["num_classes"])],
        preprocessing=spec.preprocessing.model_dump(),
        provenance={"format": "state_dict"},
        digest=file_digest(path),
        path=str(path),
    )


def _head_outputs(arch: str, state: dict, path: Path) -> int:
    """The number of classes a state_dict's classification layer produces."""
    name, _ = classifier_head(build_model(arch))
    weight = state.get(f"{name}.weight")
    if weight is None or weight.ndim != 2:
        raise InputError(
            f"{path}: no {name}.weight in the state_dict to count classes; {SPEC_HINT}"
        )
    return int(weight.shape[0])


def describe(path: str | Path) -> dict:
    """The metadata of a checkpoint as plain data (no weights), for `qa describe`."""
    ckpt = read_checkpoint(path)
    n_params = sum(t.numel() for t in ckpt["state_dict"].values() if torch.is_tensor(t))
    prov = dict(ckpt.get("provenance", {}))
    fp = prov.get("data_fingerprint")
    if isinstance(fp, dict):
        prov["data_fingerprint"] = {
            k: v for k, v in fp.items() if k in ("digest", "n_files", "n_unique", "kind")
        }
    return {
        "path": str(path),
        "sha256": file_digest(path),
        "format_version": ckpt.get("format_version"),
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


def _kind(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = list(obj)[:4]
        return f"a dict with keys {keys}{'...' if len(obj) > 4 else ''}"
    return type(obj).__name__
