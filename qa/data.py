"""Dataset adapters and data fingerprints.

The fingerprint is what a checkpoint records about its training data so that a later data
check can tell, from the checkpoint alone, whether an eval image was seen in training.
"""

import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa import bloom, data_index, shards
from qa.errors import InputError
from qa.preprocess import decode_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
# Up to this many files the fingerprint keeps every hash (32 bytes each); beyond, a Bloom filter.
MAX_EXACT_HASHES = 100_000
BLOOM_FALSE_POSITIVE_RATE = 1e-6
_EUID = os.geteuid() if hasattr(os, "geteuid") else None


@dataclass(frozen=True)
class Sample:
    """One image and the index of its class: a file at `path`, or the member of the tar shard
    at `path` named `name` whose data are the `member` (offset, size) bytes of that file."""

    path: Path
    label: int
    member: tuple[int, int] | None = None
    name: str = ""
    # (size, mtime_ns, ctime_ns) of the file as the scan found it, so that the digest index
    # (qa.data_index) need not stat it a second time; None when the scan did not stat it
    stat: tuple[int, int, int] | None = field(default=None, compare=False, repr=False)

    @property
    def where(self) -> str:
        """The sample for messages: the file's path, or `shard:member`."""
        return f"{self.path}:{self.name}" if self.member is not None else str(self.path)


def read_bytes(sample: Sample) -> bytes:
    """The encoded image of `sample`: the one place qa reads an image's bytes.

    Raises InputError, one line naming the sample, when they cannot be read in full.
    """
    try:
        if sample.member is None:
            return sample.path.read_bytes()
        offset, size = sample.member
        with open(sample.path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as exc:
        raise InputError(f"{sample.where}: cannot read ({exc.strerror or exc})") from exc
    if len(data) != size:
        raise InputError(
            f"{sample.where}: cannot read (the shard ends after {len(data)} of {size} bytes)"
        )
    return data


def scan_image_folder(root: str | Path) -> tuple[list[str], list[Sample]]:
    """List an ImageFolder tree (`root/<class>/<image>`): class names sorted, samples sorted.

    Nothing that could be evidence is dropped silently. Symbolic links are followed (images
    or class folders kept elsewhere count), and InputError names the first entry that cannot
    be read (a broken link, a link loop, a folder without permission), an image-named entry
    that is not a readable regular file, an image outside any class folder, a folder or file
    reached a second time through links, a missing root, or a class folder with no images.
    Hidden entries of the root (.git, .DS_Store) and non-image files are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: data folder not found (expected a folder of class folders)")
    seen: dict[str, str] = {}  # real path -> the path it was first reached by
    _claim(seen, os.path.realpath(root), root)
    classes = []
    for entry in _listing(root):
        if entry.name.startswith("."):
            continue
        if stat.S_ISDIR(stat_of(entry).st_mode):
            classes.append(entry.name)
        elif Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS:
            raise InputError(
                f"{entry.path}: image outside any class folder (expected {root}/<class>/<image>)"
            )
    if not classes:
        raise InputError(f"{root}: expected one folder per class, found no class folders")
    samples: list[Sample] = []
    for label, name in enumerate(sorted(classes)):
        files = _class_images(root / name, seen)
        if not files:
            raise InputError(
                f"{root / name}: class folder has no images "
                f"(expected files ending in {', '.join(IMAGE_EXTENSIONS)})"
            )
        samples.extend(Sample(path, label, None, "", st) for path, st in files)
    return sorted(classes), samples


def _class_images(folder: Path, seen: dict[str, str]) -> list[tuple[Path, tuple[int, int, int]]]:
    """Every image under `folder`, sorted, with its (size, mtime_ns, ctime_ns), following
    links; InputError for any it cannot use."""
    folder = os.fspath(folder)
    _claim(seen, os.path.realpath(folder), folder)
    files, pending, nested = [], [folder], False
    while pending:  # strings, not Paths: this runs once per image of every split
        current = pending.pop()
        parent = Path(current)
        real_prefix = os.path.join(os.path.realpath(current), "")  # ends in one separator
        for entry in _listing(current):
            path, st = entry.path, stat_of(entry)
            # A link's real path is its target's; any other entry's follows from its folder's.
            real = os.path.realpath(path) if entry.is_symlink() else real_prefix + entry.name
            if stat.S_ISDIR(st.st_mode):
                _claim(seen, real, path)
                pending.append(path)
                nested = True
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                check_readable_file(path, st.st_mode, owner=st.st_uid)
                _claim(seen, real, path)
                # joinpath parses the one new name: a third of the cost of Path(path)
                image = parent.joinpath(entry.name)
                files.append((image, (st.st_size, st.st_mtime_ns, st.st_ctime_ns)))
    if not nested:  # one folder, listed by name: already in the order below
        return files
    return sorted(files, key=lambda f: f[0])  # as Paths order: part by part


def _listing(folder: Path) -> list[os.DirEntry]:
    """The entries of `folder`, or InputError when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)  # so errors name the same entry each run
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the folder ({exc.strerror})") from None


def stat_of(path: Path | os.DirEntry, where: str = "") -> os.stat_result:
    """`path`'s status through any symbolic links, or InputError (prefixed by `where`) saying
    why it cannot be reached: not found, a broken link, a link loop, no permission."""
    try:
        return path.stat()
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError):
            reason = f"cannot read ({exc.strerror})"
        elif path.is_symlink():
            reason = f"broken symbolic link to {os.readlink(path)}"
        else:
            reason = "not found"
        raise InputError(f"{where}{os.fspath(path)}: {reason}") from None


def check_readable_file(path: Path, mode: int, where: str = "", owner: int | None = None) -> None:
    """InputError unless `path` (of stat `mode`, owned by user id `owner` when known) is a
    regular file this process may read."""
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise InputError(f"{where}{path}: expected an image file, found {kind}")
    # Ours and readable by us, or someone else's and readable by group and others alike:
    # os.access would say so too, at a system call per image; anything else is asked of it.
    if owner is None:
        plainly = False
    elif owner == _EUID:
        plainly = bool(mode & stat.S_IRUSR)
    else:
        plainly = bool(mode & stat.S_IRGRP and mode & stat.S_IROTH)
    if not plainly and not os.access(path, os.R_OK):
        raise InputError(f"{where}{path}: cannot read (Permission denied)")


def _claim(seen: dict[str, str], real: str, path: str | Path) -> None:
    """Record that `path` leads to `real`; InputError if an earlier path already led there,
    since its images would then count twice."""
    first = seen.setdefault(real, os.fspath(path))
    if first != os.fspath(path):
        raise InputError(
            f"{path}: leads to {first} again (a symbolic link loop or a second link), "
            "so the same images would count twice"
        )


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of raw file bytes: the identity of an image for duplicate and leak checks."""
    return hashlib.sha256(data).hexdigest()


def image_problem(data: bytes) -> str | None:
    """Return why these bytes are not an image qa can use, or None when they decode.

    Decoded as inference decodes them (qa.preprocess.decode_bytes), so a file accepted here
    cannot fail, or decode differently, later.
    """
    try:
        decode_bytes(data)
    except Exception as exc:  # PIL raises many types for bad files; all mean "unreadable"
        return f"{type(exc).__name__}: {exc}"
    return None


def fingerprint_from_hashes(hashes: list[str]) -> dict:
    """Build the training-data fingerprint stored in a checkpoint's provenance.

    `digest` identifies the whole set (order-free); membership of a single file is answered
    exactly from the sorted hashes for sets up to MAX_EXACT_HASHES, and by a Bloom filter
    (false-positive rate BLOOM_FALSE_POSITIVE_RATE, no false negatives) beyond.
    """
    unique = sorted(set(hashes))
    digest = hashlib.sha256("\n".join(unique).encode()).hexdigest()
    fp: dict = {"digest": digest, "n_files": len(hashes), "n_unique": len(unique)}
    raw = np.frombuffer(b"".join(bytes.fromhex(h) for h in unique), dtype=np.uint8)
    if len(unique) <= MAX_EXACT_HASHES:
        fp["kind"] = "exact"
        fp["hashes"] = raw.reshape(-1, 32).copy()
    else:
        fp["kind"] = "bloom"
        fp.update(bloom.build(raw.reshape(-1, 32), BLOOM_FALSE_POSITIVE_RATE))
    return fp


def fingerprint_summary(fp: dict) -> dict:
    """A fingerprint without its hashes or filter: what reports and `qa describe` show."""
    return {k: fp[k] for k in ("digest", "n_files", "n_unique", "kind") if k in fp}


def fingerprint_contains(fp: dict, sha256_hex: str) -> bool:
    """Whether a file with this sha256 was part of the fingerprinted training data."""
    key = np.frombuffer(bytes.fromhex(sha256_hex), dtype=np.uint8)
    if fp["kind"] == "exact":
        hashes = np.asarray(fp["hashes"], dtype=np.uint8)
        return bool((hashes == key).all(axis=1).any())
    bits = np.asarray(fp["bits"], dtype=np.uint8)
    positions = bloom.positions(key[None, :], int(fp["n_bits"]), int(fp["n_hashes"]))[0]
    return bool(all(bits[p >> 3] & (1 << (p & 7)) for p in positions))


@dataclass
class Dataset:
    """One split of a suite's data: samples in a fixed order, stable ids, per-sample metadata.

    `ids` are paths relative to the data root (the folder, or the manifest's `root`), or tar
    members' names (qa.shards), so they survive moving the data; `metadata` holds a
    manifest's extra columns, usable as slices.
    """

    source: str
    root: Path
    class_names: list[str]
    samples: list[Sample]
    ids: list[str]
    metadata: dict[str, np.ndarray]


def subset_dataset(dataset: Dataset, keep: np.ndarray) -> Dataset:
    """The same dataset with only the samples where `keep` is true (ids, metadata alike)."""
    keep = np.asarray(keep, dtype=bool)
    return Dataset(
        source=dataset.source,
        root=dataset.root,
        class_names=dataset.class_names,
        samples=[s for s, k in zip(dataset.samples, keep, strict=True) if k],
        ids=[i for i, k in zip(dataset.ids, keep, strict=True) if k],
        metadata={c: v[keep] for c, v in dataset.metadata.items()},
    )


def load_dataset(spec) -> Dataset:
    """The Dataset a suite data source describes: `{path: DIR}`, `{manifest: CSV, root: DIR}`
    or `{shards: PATTERN}` (qa.shards; ids are member names, root the shards' folder)."""
    if spec.manifest is not None:
        from qa.manifest import read_manifest  # it builds on this module's Sample and Dataset

        return read_manifest(spec.manifest, spec.root)
    pattern = getattr(spec, "shards", None)  # a spec written before shards existed has none
    if pattern is not None:
        classes, rows = shards.scan_shards(pattern, IMAGE_EXTENSIONS)
        samples = [Sample(Path(p), label, (at, size), name) for p, name, at, size, label in rows]
        ids = [s.name for s in samples]  # the image members' names
        return Dataset(pattern, Path(pattern).parent, classes, samples, ids, {})
    classes, samples = scan_image_folder(spec.path)
    root = Path(spec.path)
    ids = _relative_ids(root, samples)
    return Dataset(str(spec.path), root, classes, samples, ids, {})


def _relative_ids(root: Path, samples: list[Sample]) -> list[str]:
    """Each sample's path under `root`, POSIX style: the ids of an ImageFolder split. By string
    prefix (scan_image_folder made every path as root / ...), ten times faster than
    Path.relative_to on large splits."""
    base = os.fspath(root)
    prefix = "" if base == "." else base.rstrip(os.sep) + os.sep
    ids = []
    for sample in samples:
        path = os.fspath(sample.path)
        relative = path[len(prefix) :] if path.startswith(prefix) else None
        ids.append(relative or sample.path.relative_to(root).as_posix())
    return [i.replace(os.sep, "/") for i in ids]


def content_fingerprint(
    dataset: Dataset, cache_dir=None, rehash: bool = False, writable: bool = True
) -> str:
    """sha256 over every sample's id and the sha256 of its bytes, in order: the data part of
    cache keys. Only the samples the index under `cache_dir` does not vouch for are read
    (qa.data_index), and their digests are remembered there unless the folder is not
    `writable` (a read-only cache already cost its one warning); with `cache_dir` None or
    `rehash`, every one."""
    since = time.time_ns()
    digests = data_index.known_digests(dataset, cache_dir, rehash)
    unknown = [i for i, d in enumerate(digests) if d is None]
    for i in unknown:
        digests[i] = sha256_bytes(read_bytes(dataset.samples[i]))
    if unknown and writable:
        data_index.remember(dataset, digests, cache_dir, since_ns=since)
    return data_index.fingerprint(dataset, digests)


def labels_for(dataset: Dataset, class_names: list[str]) -> np.ndarray:
    """The dataset's labels as indices into a model's `class_names`, matched by name.

    A dataset may hold a subset of the model's classes; a class the model does not know is
    unusable input, reported with both lists.
    """
    unknown = [c for c in dataset.class_names if c not in class_names]
    if unknown:
        raise InputError(
            f"{dataset.source}: classes {_listed(unknown)} are not classes of the model; "
            f"data classes: {_listed(dataset.class_names)}; model classes: {_listed(class_names)}"
        )
    index = np.array([class_names.index(c) for c in dataset.class_names], dtype=np.int64)
    return index[np.array([s.label for s in dataset.samples], dtype=np.int64)]


def _listed(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}{f', ... ({len(names)} in all)' if len(names) > limit else ''}]"
