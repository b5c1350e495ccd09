"""Reading torch files: once, hashed, without running code from them unless trusted, quietly.

A file is read into memory once (`read_file`); its sha256 is taken of those bytes and every
loader reads the same bytes, so the digest that keys caches and reports is the digest of what
was loaded, even if the file is replaced meanwhile (as a trainer replaces last.pt each epoch).

Untrusted bytes only ever reach `torch.load(weights_only=True)` (`unpickle`): tensors and plain
containers, never code. Everything else runs code from the file and needs trust (`load_trusted`,
given torch's reader for the kind by qa.formats): a pickle of arbitrary objects; a TorchScript
archive (its methods run at load and can write files, e.g. `torch.save` to any path); a
torch.export archive (`torch.export.load` unpickles members flagged `use_pickle` with
`weights_only=False`, falls back to it for sample inputs, unpickles custom objects, and imports
the modules its graph's pytree specs name, so no check of the members could make one safe).
torch's warnings, log records and its advice to retry with `weights_only=False` never reach the
user: every failure is one line of our own, and a file only code can load says so in qa's
words (NEEDS_CODE); `qa run`, which can load one, adds when to pass --trust-checkpoint
(qa.formats.TRUST_HINT).
"""

import contextlib
import hashlib
import io
import logging
import re
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from qa.errors import InputError, UntrustedCheckpointError

# The number torch<1.6 pickled at the start of every (non-zip) file it saved.
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
# What torch's safe unpickler says when a pickle names code or builds objects it cannot vet.
_NAMES_CODE = ("unsupported global", "is blocked", "can only create", "can only build", "reduce")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TORCH_ADVICE = re.compile(
    r"weights_only|safe_globals|file an issue|documentation|still be loaded|trust", re.IGNORECASE
)
# qa's own word for a file only code can load, in place of torch's advice to load it unsafely
NEEDS_CODE = "this file needs code to load"


@dataclass(frozen=True)
class FileBytes:
    """A file's bytes as read once, and their sha256: what is loaded is what is hashed."""

    path: Path
    data: bytes
    digest: str


def read_file(path: str | Path) -> FileBytes:
    """Read a checkpoint file whole; InputError (one line) if it is missing, unreadable or empty."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: checkpoint not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the checkpoint ({exc.strerror})") from None
    if not data:
        raise InputError(f"{path}: not a readable torch checkpoint (the file is empty)")
    return FileBytes(path, data, hashlib.sha256(data).hexdigest())


def archive_kind(data: bytes) -> str:
    """What model file these bytes are: "onnx", or from their zip members "export",
    "torchscript" or "pickle".

    An ONNX model is a protobuf whose first field is its ir_version (tag byte 0x08, then a
    small varint); no pickle or zip starts so. torch.export archives carry an `archive_format`
    member and TorchScript archives a `code/` tree or `constants.pkl`; anything else
    (torch.save's zip or legacy format) is a pickle. qa.formats.READERS has a reader for each
    kind. A misjudged file is still safe: untrusted bytes only ever reach `unpickle` or the
    ONNX parser, neither of which runs code.
    """
    if len(data) > 1 and data[0] == 0x08 and 0 < data[1] < 0x80:
        return "onnx"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "pickle"
    if any(n.rsplit("/", 1)[-1] == "archive_format" for n in names):
        return "export"
    if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    return "pickle"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence torch's warnings and log records while it reads a file: qa reports one line."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def unpickle(blob: FileBytes) -> Any:
    """Unpickle a torch file's bytes with `weights_only=True`: tensors and plain containers only.

    The one loader for untrusted bytes. A file that only Python's full unpickler could read (it
    names classes or functions to import, or is a TorchScript archive or a legacy torch pickle
    beyond the safe unpickler) is UntrustedCheckpointError; a damaged or foreign file InputError.
    """
    import torch

    try:
        with quiet():
            return torch.load(io.BytesIO(blob.data), map_location="cpu", weights_only=True)
    except Exception as exc:
        why = _needs_code(exc, blob.data)
        if why:
            raise UntrustedCheckpointError(
                f"{blob.path}: refusing to load: {NEEDS_CODE} ({why}); "
                "expected a qa checkpoint or a state_dict"
            ) from None
        if tarfile.is_tarfile(io.BytesIO(blob.data)):  # torch.load reads these from real files only
            raise InputError(
                f"{blob.path}: not a readable torch checkpoint (a torch<0.4 .tar file, which qa "
                "does not read; re-save it with a current torch.save)"
            ) from None
        raise InputError(f"{blob.path}: not a readable torch checkpoint ({reason(exc)})") from None


def load_torch_file(path: str | Path) -> Any:
    """Read and `unpickle` a torch file: our checkpoints, state_dicts, torchvision weight files."""
    return unpickle(read_file(path))


def load_trusted(blob: FileBytes, what: str, load: Callable[[BinaryIO], Any]) -> Any:
    """Run `load` (torch's reader for a `what`) on bytes the user trusts (--trust-checkpoint),
    and so whatever code they carry; quietly, and a failure is one InputError line."""
    try:
        with quiet():
            return load(io.BytesIO(blob.data))
    except Exception as exc:
        raise InputError(f"{blob.path}: not a readable {what} ({reason(exc)})") from None


def _needs_code(exc: Exception, data: bytes) -> str | None:
    """Why a failed safe load could only succeed by running code from the file, or None."""
    text = str(exc).lower()
    if "torchscript" in text:
        return "a TorchScript archive, whose own code runs when it is loaded"
    if "unsupported operand" in text and _LEGACY_MAGIC in data[:64]:
        return "a legacy (torch<1.6) pickle, which only Python's full unpickler reads"
    if type(exc).__name__ == "UnpicklingError" and any(s in text for s in _NAMES_CODE):
        named = re.search(r"GLOBAL (\S+) (?:was|whose)", str(exc))
        what = f"it names {named.group(1)}" if named else "it builds Python objects"
        return f"{what}, which only Python's full unpickler builds"
    return None


def reason(exc: BaseException) -> str:
    """torch's explanation of a failure in one short line, without its advice to load unsafely."""
    for line in _ANSI.sub("", str(exc)).splitlines():
        line = line.strip().removeprefix("Weights only load failed.").strip()
        line = line.removeprefix("WeightsUnpickler error:").strip()
        sentence = re.split(r"(?<=[.?!;])\s", line, maxsplit=1)[0].rstrip(".;")
        if sentence and not _TORCH_ADVICE.search(sentence):
            return sentence[:160]
    return type(exc).__name__
