"""The on-disk evidence cache: logits keyed by the content hash of everything they depend on.

Tables (data profiles) are JSON entries, `{"checksum", "columns": {name: [values]}}`, read
and checked the same way; nothing in the cache is ever unpickled.

An entry's key is the sha256 of the model file's digest, the data fingerprint (every file's
bytes), the view, the preprocessing, the device type, and qa's version with CACHE_FORMAT, so an
entry is never stale: any change makes a new key. Entries are `.npz` files written atomically,
holding the logits, the sample ids they belong to and a sha256 of the logits' bytes. A read
that fails to load, or whose shape, ids or checksum disagree, is a miss (and the entry is
removed where the folder allows it), never trusted. Batch size and worker count are not part of the key: they do not
change what is computed.
"""

import contextlib
import hashlib
import json
from pathlib import Path

import numpy as np

import qa
from qa.io import atomic_path, write_text_atomic

CACHE_FORMAT = 2  # 2: images decode by their real range (16-bit greyscale no longer clips)
DEFAULT_DIR = ".qa-cache"


def entry_key(parts: dict) -> str:
    """The content address of one entry: sha256 of its parts as canonical JSON."""
    text = json.dumps(
        {**parts, "qa": qa.__version__, "cache_format": CACHE_FORMAT}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def entry_path(cache_dir: str | Path, key: str, suffix: str = ".npz") -> Path:
    """Where the entry for `key` lives: two-level fan-out keeps folders small."""
    return Path(cache_dir) / key[:2] / f"{key}{suffix}"


def _checksum(logits: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(logits).tobytes()).hexdigest()


def read_entry(cache_dir: str | Path, key: str, ids: list[str]) -> np.ndarray | None:
    """The cached logits for `key` if a sound entry for exactly these sample ids exists."""
    path = entry_path(cache_dir, key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as entry:
            logits, stored_ids, checksum = entry["logits"], entry["ids"], str(entry["checksum"])
    except Exception:  # a truncated or corrupt file fails in many ways; all mean "recompute"
        _discard(path)
        return None
    sound = (
        logits.dtype == np.float32
        and logits.ndim == 2
        and logits.shape[0] == len(ids)
        and stored_ids.shape == (len(ids),)
        and stored_ids.tolist() == list(ids)
        and checksum == _checksum(logits)
    )
    if not sound:
        _discard(path)
        return None
    return logits


def _discard(path: Path) -> None:
    """Remove an unsound entry if the folder allows it. In a read-only cache it stays: it is
    a miss every time, and the recomputed view's write reports the folder (one warning)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def write_entry(cache_dir: str | Path, key: str, logits: np.ndarray, ids: list[str]) -> None:
    """Store logits for `key` atomically; readers see the whole entry or none."""
    with atomic_path(entry_path(cache_dir, key)) as tmp, open(tmp, "wb") as f:
        # a file object: np.savez would append ".npz" to a path that lacks it
        np.savez(
            f,
            logits=np.ascontiguousarray(logits, dtype=np.float32),
            ids=np.array(ids, dtype=str),
            checksum=np.array(_checksum(logits.astype(np.float32, copy=False))),
        )


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
