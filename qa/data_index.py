"""The index that spares re-reading unchanged files when fingerprinting a split's content.

The fingerprint (qa.data.content_fingerprint, the data part of every cache key) is the sha256
over each sample's id and the sha256 of its bytes, in order. Hashing 50,000 files on every
run would cost a sizeable share of decoding them, so the digests are kept in an index under
the cache folder, `<cache_dir>/index/<sha256 of the container>.json`: for files, one index
per dataset root, mapping each file's absolute path to its (size, mtime_ns, ctime_ns,
sha256); for tar shards, one index per shard, mapping each member's name to the shard's
(size, mtime_ns, ctime_ns) and the member's sha256. A digest is used only while that stat
still matches, so a run over unchanged data stats its files and reads none. ctime is part of
the match because no user tool sets it: restoring a file's mtime after editing it still
changes its ctime.

A digest is remembered only for a file last changed at least SETTLE_NS before its bytes were
read (`since_ns`), so an edit landing in the same timestamp tick as the read, or on a file
system whose clock or granularity is coarser, is never mistaken for the content read. An index
that does not parse, has another format, or fails its checksum is ignored and rewritten, never
trusted; `--rehash` ignores it altogether.

A checkpoint's digest (the key of its facts record and of every view, qa.facts) is kept the
same way, in an index of its own file (`file_digest`, `remember_file`), so that a warm run
stats the checkpoint instead of hashing it.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from qa.io import write_text_atomic

if TYPE_CHECKING:  # qa.data builds its content_fingerprint on this module
    from qa.data import Dataset

INDEX_FORMAT = 2  # 2: a header line, its checksum over the entries' text as written
HEX_DIGITS = "0123456789abcdef"
SETTLE_NS = 2_000_000_000  # covers FAT's 2 s mtimes and a little clock skew on network mounts
_IMPORTED_NS = time.time_ns()  # before a run reads anything: the safe default of `since_ns`


def fingerprint(dataset: "Dataset", digests: list[str]) -> str:
    """The content fingerprint from each sample's sha256 hex digest, in dataset order."""
    h = hashlib.sha256()
    for sample_id, digest in zip(dataset.ids, digests, strict=True):
        h.update(sample_id.encode() + b"\0" + bytes.fromhex(digest))
    return h.hexdigest()


def known_digests(
    dataset: "Dataset", cache_dir, rehash: bool = False, scanned: bool = False
) -> list[str | None]:
    """Per sample, its sha256 hex digest from the index when its file (or shard) is unchanged
    since, else None; all None with `rehash` or no `cache_dir`. Reads no image: stats only.

    With `scanned`, the caller has just scanned `dataset` and judges the data as that scan
    found it (a run does), so the stats the scan took (qa.data.Sample.stat) vouch and no file
    is stat'ed twice; otherwise every file is stat'ed now (a Dataset may outlive edits)."""
    if cache_dir is None or rehash:
        return [None] * len(dataset.samples)
    places = _places(dataset)
    indexes = {name: _read_index(Path(cache_dir), name) for name in set(p[0] for p in places)}
    stats: dict[str, list[int] | None] = {}
    digests: list[str | None] = []
    for sample, (name, key, file) in zip(dataset.samples, places, strict=True):
        if scanned and sample.stat is not None and sample.member is None:
            st = list(sample.stat)
        else:
            if file not in stats:
                stats[file] = _stat(file)
            st = stats[file]
        entry = indexes[name].get(key)
        known = isinstance(entry, list) and st is not None and entry[:3] == st
        digests.append(entry[3] if known and _digest(entry) else None)
    return digests


def remember(
    dataset: "Dataset", digests: list[str | None], cache_dir, since_ns: int | None = None
) -> None:
    """Store the samples' sha256 hex digests in the index under `cache_dir`, beside what is
    there (None entries are skipped).

    `since_ns` is a time.time_ns() taken before the first of these samples was read: a file
    changed after it (or less than SETTLE_NS before it) is left out, since its digest may
    predate the change. The default, when qa.data_index was imported, is safe but leaves out
    every file changed later in a long-lived process. The index only saves time: a cache
    folder that cannot be written gets one warning on stderr, and the run goes on.
    """
    if cache_dir is None:
        return
    settled_before = (_IMPORTED_NS if since_ns is None else since_ns) - SETTLE_NS
    updates: dict[str, dict[str, list]] = {}
    stats: dict[str, list[int] | None] = {}
    for (name, key, file), digest in zip(_places(dataset), digests, strict=True):
        if file not in stats:
            stats[file] = _stat(file)
        st = stats[file]
        if digest is not None and st is not None and max(st[1], st[2]) < settled_before:
            updates.setdefault(name, {})[key] = [*st, digest]
    for name, entries in updates.items():
        try:
            _write_index(Path(cache_dir), name, {**_read_index(Path(cache_dir), name), **entries})
        except OSError as exc:
            print(f"warning: cannot write the data index ({exc}); continuing", file=sys.stderr)
            return


def file_digest(path, cache_dir) -> str | None:
    """The sha256 hex digest of one file (a checkpoint) from its own index, when its stat still
    matches the one remembered with it; None otherwise. Stats the file, reads none of it."""
    file = os.path.abspath(path)
    st = _stat(file)
    entry = _read_index(Path(cache_dir), _file_name(file)).get(file)
    known = isinstance(entry, list) and st is not None and entry[:3] == st
    return entry[3] if known and _digest(entry) else None


def remember_file(path, digest: str, cache_dir, since_ns: int) -> None:
    """Store one file's digest in its own index, by `remember`'s rule: only when the file
    last changed SETTLE_NS or more before `since_ns` (taken before its bytes were read). A
    folder that cannot be written is passed over in silence (the caller's cache warns once)."""
    file = os.path.abspath(path)
    st = _stat(file)
    if st is None or max(st[1], st[2]) >= since_ns - SETTLE_NS:
        return
    try:
        _write_index(Path(cache_dir), _file_name(file), {file: [*st, digest]})
    except OSError:
        return


def _file_name(file: str) -> str:
    return _name("file\0" + file)  # never a dataset root's index, whose name is its path's


def _places(dataset: "Dataset") -> list[tuple[str, str, str]]:
    """Per sample: its index's name, its key in that index, and the file whose stat vouches."""
    root = _name(os.path.abspath(dataset.root))
    places = []
    shard_names: dict[Path, tuple[str, str]] = {}
    for sample in dataset.samples:
        if sample.member is None:
            file = os.path.abspath(sample.path)
            places.append((root, file, file))
        else:
            if sample.path not in shard_names:
                shard = os.path.abspath(sample.path)
                shard_names[sample.path] = (_name(shard), shard)
            name, shard = shard_names[sample.path]
            places.append((name, sample.name, shard))
    return places


def _name(container: str) -> str:
    return hashlib.sha256(container.encode()).hexdigest()


def _stat(file: str) -> list[int] | None:
    """The (size, mtime_ns, ctime_ns) a digest is valid for; None when the file cannot be
    reached (the read that follows names the problem)."""
    try:
        st = os.stat(file)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _index_path(cache_dir: Path, name: str) -> Path:
    return cache_dir / "index" / f"{name}.json"


def _read_index(cache_dir: Path, name: str) -> dict[str, list]:
    """The index's entries (each checked when used: `_digest`), or none when it is missing,
    corrupt or of another format.

    The file is a header line, {"format", "checksum"}, then the entries as JSON: the checksum
    is the sha256 of that text as written, so checking it costs no second serialisation."""
    try:
        header, _, body = _index_path(cache_dir, name).read_text(encoding="utf-8").partition("\n")
        stored = json.loads(header)
        if stored["format"] != INDEX_FORMAT or stored["checksum"] != _checksum(body):
            return {}
        entries = json.loads(body)
    except (OSError, ValueError, TypeError, KeyError):  # unreadable or damaged: re-hash
        return {}
    return entries if isinstance(entries, dict) else {}


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _digest(entry: list) -> bool:
    """Whether an index entry whose stat matched ends in a sha256 hex digest, and nothing else."""
    return (
        len(entry) == 4
        and isinstance(entry[3], str)
        and len(entry[3]) == 64
        and not entry[3].strip(HEX_DIGITS)  # a regex per entry costs a warm run 20 ms
    )


def _write_index(cache_dir: Path, name: str, entries: dict[str, list]) -> None:
    path = _index_path(cache_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(entries, separators=(",", ":"))
    header = json.dumps({"format": INDEX_FORMAT, "checksum": _checksum(body)})
    write_text_atomic(path, f"{header}\n{body}")
