"""Every checkpoint format `qa run` accepts, behind one call: `load_any`.

qa's own format (qa.checkpoint), a plain state_dict and an ONNX model (qa.onnx_model, run by
onnxruntime) are read without running code; a pickled module, a TorchScript archive and a
torch.export archive run code from the file when loaded, so they load only with
--trust-checkpoint (`trust`). Files that do not describe themselves
take what they lack (architecture, class names, preprocessing) from the suite's `model:`.

`READERS` maps each kind of torch file `qa.torchfile.archive_kind` tells apart to the function
that turns such a file into a LoadedModel: a new format is one reader registered there (and,
if its bytes look like no kind yet, one rule in `archive_kind`).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from qa.architectures import (
    build_model,
    check_outputs,
    classifier_head,
    model_from_checkpoint,
    spec_preprocessing,
    without_ddp_prefix,
)
from qa.checkpoint import LoadedModel, loaded_model
from qa.checkpoint_meta import FORMAT, kind_of, validate_checkpoint
from qa.errors import InputError, UntrustedCheckpointError
from qa.onnx_model import read_onnx
from qa.torchfile import (
    NEEDS_CODE,
    FileBytes,
    archive_kind,
    load_trusted,
    read_file,
    unpickle,
)

TRUST_HINT = "pass --trust-checkpoint only if you trust its source"
SPEC_HINT = "add `model: {arch: NAME, arch_kwargs: {num_classes: N}}` to the suite"
NAMES_HINT = "add `model: {arch: NAME, class_names: [...], preprocessing: {...}}` to the suite"


def load_any(path: str | Path, model_spec=None, trust: bool = False) -> LoadedModel:
    """Load any checkpoint qa accepts into a ready-to-run LoadedModel.

    Our self-describing format; a plain state_dict (with `model_spec`, the suite's `model:`,
    naming the architecture); and, only with `trust` since loading them runs code from the
    file, TorchScript and torch.export archives and pickled modules (class names and
    preprocessing from `model_spec`). The file is read once: `digest` is the sha256 of the
    bytes that were loaded.
    """
    return load_bytes(read_file(path), model_spec, trust)


def load_bytes(blob: FileBytes, model_spec=None, trust: bool = False) -> LoadedModel:
    """`load_any` of a checkpoint file's bytes already read (qa.torchfile.read_file): what
    qa.facts loads when a run needs the model whose digest it already took."""
    return READERS[archive_kind(blob.data)](blob, model_spec, trust)


def _read_pickle(blob: FileBytes, spec, trust: bool) -> LoadedModel:
    """A torch.save file: our checkpoint, a state_dict, or (trusted) a pickled module."""
    try:
        obj = unpickle(blob)
    except UntrustedCheckpointError as exc:
        if not trust:
            raise UntrustedCheckpointError(f"{exc}; {TRUST_HINT}") from None
        obj = load_trusted(blob, "torch pickle", _torch_load)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return loaded_model(validate_checkpoint(obj, blob.path), blob.path, blob.digest)
    if isinstance(obj, nn.Module):
        obj.eval()
        return _described_by_spec(obj, "pickled module", spec, blob)
    return _from_state_dict(_as_state_dict(obj, blob.path), spec, blob)


def _read_torchscript(blob: FileBytes, spec, trust: bool) -> LoadedModel:
    """A TorchScript archive (trusted): its module, described by the suite."""
    module = _trusted(blob, trust, "TorchScript archive", _jit_load)
    module.eval()
    return _described_by_spec(module, "torchscript", spec, blob)


def _read_export(blob: FileBytes, spec, trust: bool) -> LoadedModel:
    """A torch.export archive (trusted): its module, described by the suite. An exported
    program's module has no train mode to leave, so it is not put in eval mode."""
    module = _trusted(blob, trust, "torch.export archive", _export_load)
    return _described_by_spec(module, "torch.export", spec, blob)


READERS: dict[str, Callable[[FileBytes, Any, bool], LoadedModel]] = {
    "pickle": _read_pickle,
    "torchscript": _read_torchscript,
    "export": _read_export,
    "onnx": read_onnx,  # runs no code, so needs no trust (qa.onnx_model)
}


def _torch_load(f: BinaryIO) -> Any:
    return torch.load(f, map_location="cpu", weights_only=False)


def _jit_load(f: BinaryIO) -> nn.Module:
    return torch.jit.load(f, map_location="cpu")


def _export_load(f: BinaryIO) -> nn.Module:
    return torch.export.load(f).module()


def _trusted(blob: FileBytes, trust: bool, what: str, load: Callable[[BinaryIO], Any]) -> Any:
    """`load` the bytes if the user trusts them; otherwise refuse in one line."""
    if not trust:
        raise UntrustedCheckpointError(
            f"{blob.path}: refusing to load a {what}: {NEEDS_CODE} (loading one runs code "
            f"from the file); {TRUST_HINT}"
        )
    return load_trusted(blob, what, load)


def _described_by_spec(module: nn.Module, kind: str, spec, blob: FileBytes) -> LoadedModel:
    """A module whose file carries no class names or preprocessing: the suite supplies them."""
    names = spec.resolved_class_names() if spec is not None else None
    if names is None:
        raise InputError(f"{blob.path}: a {kind} file does not name its classes; {NAMES_HINT}")
    return _described(module, names, spec, kind, blob)


def _described(module: nn.Module, names: list[str], spec, kind: str, blob) -> LoadedModel:
    """The LoadedModel of a file in format `kind` whose metadata the suite's `model:` gives."""
    return LoadedModel(
        module=module,
        arch=spec.arch,
        class_names=names,
        preprocessing=spec_preprocessing(spec.arch, spec.preprocessing),
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
    return without_ddp_prefix(obj)


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
    check_outputs(module, names, path, "the suite's model.class_names")
    return _described(module, names, spec, "state_dict", blob)


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
