"""qa's own checkpoint format: write it, read it, load it, describe it.

A qa checkpoint is a plain dict of metadata and tensors (the schema is qa.checkpoint_meta,
which validates every read and every write) saved with `torch.save`, so it is read with
`weights_only=True` and never runs code. A file is read once (qa.torchfile): a LoadedModel's
digest, and `describe`'s sha256, is the sha256 of the bytes its weights came from. Other
formats (state_dicts, TorchScript, ...) are qa.formats'.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qa.architectures import check_outputs, model_from_checkpoint
from qa.checkpoint_meta import FORMAT, FORMAT_VERSION, validate_checkpoint
from qa.data import fingerprint_summary
from qa.io import atomic_path
from qa.torchfile import FileBytes, read_file, unpickle


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


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    """Write a checkpoint dict atomically, stamping the format and version; it must validate."""
    payload = validate_checkpoint(
        {"format": FORMAT, "format_version": FORMAT_VERSION, **checkpoint}, path
    )
    with atomic_path(path) as tmp:
        torch.save(_tensors_for_saving(payload), tmp)


def _tensors_for_saving(value: Any) -> Any:
    # numpy arrays are not loadable with weights_only=True; tensors are.
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: _tensors_for_saving(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_tensors_for_saving(v) for v in value)
    return value


def read_checkpoint(path: str | Path) -> dict:
    """Read one of our checkpoints without executing code from the file.

    Refuses, with one line naming the file, a missing file, a file that is not a torch
    archive, one that would need arbitrary unpickling, and a dict that is not our format.
    """
    return _read(path)[1]


def _read(path: str | Path) -> tuple[FileBytes, dict]:
    """The bytes of `path`, read once, and the validated checkpoint they hold."""
    blob = read_file(path)
    return blob, validate_checkpoint(unpickle(blob), path)


def load_model(path: str | Path) -> LoadedModel:
    """Load a qa checkpoint into a ready-to-run model in eval mode."""
    blob, ckpt = _read(path)
    return loaded_model(ckpt, blob.path, blob.digest)


def loaded_model(ckpt: dict, path: str | Path, digest: str = "") -> LoadedModel:
    """The ready-to-run model of a validated checkpoint dict read from `path` (bytes `digest`)."""
    module = model_from_checkpoint(ckpt, path)
    check_outputs(module, ckpt["class_names"], path, "class_names")
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


def describe(path: str | Path) -> dict:
    """The metadata of a checkpoint as plain data (no weights), for `qa describe`.

    `sha256` is the digest of the bytes the metadata was read from.
    """
    blob, ckpt = _read(path)
    n_params = sum(t.numel() for t in ckpt["state_dict"].values())
    prov = dict(ckpt.get("provenance", {}))
    fp = prov.get("data_fingerprint")
    if isinstance(fp, dict):
        prov["data_fingerprint"] = fingerprint_summary(fp)  # not the hash of every file
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


def description_lines(info: dict) -> list[str]:
    """`describe`'s facts as aligned `key  value` lines: what `qa describe` and `trainer
    describe` print. Each provenance entry gets its own line; values other than strings are
    compact JSON. Keys and strings that are not printable (control characters, newlines: they
    come from the file) are shown escaped, as JSON strings."""
    rows = [(k, v) for k, v in info.items() if k != "provenance"]
    rows += [(f"provenance.{k}", v) for k, v in info.get("provenance", {}).items()]
    shown = [(_printable(str(k)), _printable(v)) for k, v in rows]
    width = max(len(key) for key, _ in shown)
    return [f"{key:<{width}}  {value}" for key, value in shown]


def description_json(info: dict) -> str:
    """`describe`'s facts as indented JSON: what `qa describe --json` and `trainer describe
    --json` print (values JSON cannot hold, such as paths, as text)."""
    return json.dumps(info, default=str, indent=2)


def _printable(value: Any) -> str:
    if isinstance(value, str) and value.isprintable():
        return value
    return json.dumps(value, default=str, ensure_ascii=False)
