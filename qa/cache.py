"""The on-disk evidence cache: logits keyed by the content hash of everything they depend on.

Tables (data profiles) are JSON entries, `{"checksum", "columns": {name: [values]}}`, read
and checked the same way; nothing in the cache is ever unpickled.

An entry's key is the sha256 of the model file's digest, the data fingerprint (every file's
bytes), the view, the preprocessing, the precision, the device type, and qa's version with
CACHE_FORMAT, so an entry is never stale: any change makes a new key. A logits entry is an
`.npy` file (float32 (N, C), streamed in by `EntryWriter` as a pass computes it and read back
memory-mapped, so no view has to fit in memory) and its record `<key>.npy.json` (shape, a
digest of the sample ids, a sha256 of the logits' bytes), written last. A read that finds no
record, or whose shape, ids or checksum disagree, is a miss (and the entry is removed where the
folder allows it), never trusted. Batch size and worker count are not part of the key: they do
not change what is computed.
"""

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

import qa
from qa.io import write_text_atomic

# 2: images decode by their real range (16-bit greyscale no longer clips); 3: .npy entries
CACHE_FORMAT = 3
DEFAULT_DIR = ".qa-cache"
RECORD = ".npy.json"  # an entry's record: shape, ids digest, checksum; written last
TMP_DIR = ".tmp"  # entries being written
SEEN_DIR = "seen"  # views stored for some data (see `seen`)
CHUNK = 1 << 22


def entry_key(parts: dict) -> str:
    """The content address of one entry: sha256 of its parts as canonical JSON."""
    text = json.dumps(
        {**parts, "qa": qa.__version__, "cache_format": CACHE_FORMAT}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def entry_path(cache_dir: str | Path, key: str, suffix: str = ".npz") -> Path:
    """Where the entry for `key` lives: two-level fan-out keeps folders small."""
    return Path(cache_dir) / key[:2] / f"{key}{suffix}"


def _file_checksum(path: Path, offset: int) -> str:
    """sha256 of a file's bytes from `offset` on, read in chunks: an entry is checked without
    mapping or loading it whole."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\0".join(ids).encode()).hexdigest()


def _npy_layout(path: Path) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) from an .npy file's header, without reading its data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(f)
        if fortran:
            raise ValueError("fortran order")
        return shape, dtype, f.tell()


def find_entry(cache_dir: str | Path, key: str, ids: list[str]) -> Path | None:
    """The logits entry for `key` if a sound one for exactly these sample ids exists, else None.

    Sound: its record parses, the .npy holds float32 (len(ids), C) whose bytes match the
    record's checksum, and the record's ids digest is these ids'. An unsound entry is removed
    where the folder allows it.
    """
    path, record = entry_path(cache_dir, key, ".npy"), entry_path(cache_dir, key, RECORD)
    if not record.is_file() or not path.is_file():
        return None
    try:
        meta = json.loads(record.read_text(encoding="utf-8"))
        shape, dtype, offset = _npy_layout(path)
        sound = (
            dtype == np.float32
            and len(shape) == 2
            and list(shape) == meta["shape"]
            and shape[0] == len(ids)
            and meta["ids"] == _ids_digest(ids)
            and meta["checksum"] == _file_checksum(path, offset)
        )
    except Exception:  # a truncated or corrupt file fails in many ways; all mean "recompute"
        sound = False
    if not sound:
        _discard(path)
        _discard(record)
        return None
    return path


def open_logits(path: str | Path) -> np.ndarray:
    """A cached or streamed logits file, memory-mapped read-only: pages are read on use and
    belong to the page cache, so holding many views costs no process memory."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _discard(path: Path) -> None:
    """Remove an unsound entry if the folder allows it. In a read-only cache it stays: it is
    a miss every time, and the recomputed view's write reports the folder (one warning)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


class EntryWriter:
    """One view's logits streamed into a new entry as a pass computes them.

    Rows go by sample index into a preallocated .npy (numpy.lib.format.open_memmap's layout,
    written through a file handle, so the rows never sit in this process's memory) in the
    folder's `.tmp/`. `commit` checksums it, renames it into place and then writes its record;
    a reader needs both, so a killed pass leaves no entry a reader could take, and its
    temporary file is removed by the next writer (`_sweep`).
    """

    def __init__(self, folder: str | Path, n: int, columns: int):
        self.folder = Path(folder)
        tmp = self.folder / TMP_DIR
        tmp.mkdir(parents=True, exist_ok=True)
        _sweep(tmp)
        fd, name = tempfile.mkstemp(prefix=f"{os.getpid()}-", suffix=".npy", dir=tmp)
        os.close(fd)
        self.path = Path(name)
        array = np.lib.format.open_memmap(self.path, "w+", np.float32, (n, columns))
        self.offset, self.row_bytes = array.offset, columns * 4
        del array  # only the header was written; the rest of the file is a hole until filled
        self.file = open(self.path, "r+b")  # noqa: SIM115 - closed by commit or discard

    def write(self, index: np.ndarray, rows: np.ndarray) -> None:
        """Write `rows` (B, C) at sample positions `index` (consecutive in every pass)."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        start = int(index[0]) if len(index) else 0
        if len(index) and int(index[-1]) - start + 1 == len(index):
            self.file.seek(self.offset + start * self.row_bytes)
            self.file.write(rows.tobytes())
            return
        for i, row in zip(index.tolist(), rows, strict=True):
            self.file.seek(self.offset + int(i) * self.row_bytes)
            self.file.write(row.tobytes())

    def commit(self, key: str, ids: list[str]) -> Path:
        """Move the finished file into the cache as the entry for `key` (sample `ids`)."""
        self.file.close()
        shape, _, offset = _npy_layout(self.path)
        record = {
            "shape": list(shape),
            "ids": _ids_digest(ids),
            "checksum": _file_checksum(self.path, offset),
        }
        target = entry_path(self.folder, key, ".npy")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)
        write_text_atomic(entry_path(self.folder, key, RECORD), json.dumps(record))
        return target

    def keep(self) -> Path:
        """Finish the file without making it an entry (a run without a cache reads it there)."""
        self.file.close()
        return self.path

    def discard(self) -> None:
        """Drop the unfinished file."""
        self.file.close()
        self.path.unlink(missing_ok=True)


def probe(folder: str | Path) -> None:
    """Raise OSError unless entries can be written in `folder` (created if missing)."""
    tmp = Path(folder) / TMP_DIR
    tmp.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{os.getpid()}-", suffix=".probe", dir=tmp)
    os.close(fd)
    os.unlink(name)


def _sweep(tmp: Path) -> None:
    """Remove the temporaries of writers whose process is gone (killed mid-pass)."""
    for path in tmp.glob("*.npy"):
        pid = path.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_seen(cache_dir: str | Path, partial: str) -> None:
    """Note that an entry was stored for a view whose key, less the data, is `partial`."""
    path = Path(cache_dir) / SEEN_DIR / partial
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def seen(cache_dir: str | Path, partial: str) -> bool:
    """Whether an entry was ever stored for this view of this model, for some data: when not,
    no entry can match whatever the data, so there is no point hashing the files first."""
    return (Path(cache_dir) / SEEN_DIR / partial).is_file()


def _table_checksum(columns: dict) -> str:
    text = json.dumps(columns, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def read_table(cache_dir: str | Path, key: str) -> dict[str, list] | None:
    """The cached columns for `key` (name -> list of JSON values), or None when absent or
    unsound (unparsable, ragged, or its checksum disagrees; the entry is then removed)."""
    path = entry_path(cache_dir, key, ".json")
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        columns = entry["columns"]
        sound = (
            isinstance(columns, dict)
            and all(isinstance(v, list) for v in columns.values())
            and len({len(v) for v in columns.values()}) <= 1
            and entry["checksum"] == _table_checksum(columns)
        )
    except Exception:  # truncated, not JSON, wrong shape: all mean "recompute"
        sound = False
    if not sound:
        _discard(path)
        return None
    return columns


def write_table(cache_dir: str | Path, key: str, columns: dict[str, list]) -> None:
    """Store JSON-able columns for `key` atomically (NaN must already be None)."""
    text = json.dumps({"checksum": _table_checksum(columns), "columns": columns}, allow_nan=False)
    write_text_atomic(entry_path(cache_dir, key, ".json"), text)
