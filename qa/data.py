"""Dataset adapters and data fingerprints.

The fingerprint is what a checkpoint records about its training data so that a later data
check can tell, from the checkpoint alone, whether an eval image was seen in training.
"""

import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
# Up to this many files the fingerprint keeps every hash (32 bytes each); beyond, a Bloom filter.
MAX_EXACT_HASHES = 100_000
BLOOM_FALSE_POSITIVE_RATE = 1e-6


@dataclass(frozen=True)
class Sample:
    """One image on disk and the index of its class."""

    path: Path
    label: int


def scan_image_folder(root: str | Path) -> tuple[list[str], list[Sample]]:
    """List an ImageFolder tree (`root/<class>/<image>`): class names sorted, samples sorted.

    Raises InputError for a missing folder, a folder with no class folders, or a class folder
    with no images, naming the folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: data folder not found (expected a folder of class folders)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputError(f"{root}: expected one folder per class, found no class folders")
    samples: list[Sample] = []
    for label, name in enumerate(classes):
        files = sorted(
            p
            for p in (root / name).rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise InputError(
                f"{root / name}: class folder has no images "
                f"(expected files ending in {', '.join(IMAGE_EXTENSIONS)})"
            )
        samples.extend(Sample(f, label) for f in files)
    return classes, samples


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of raw file bytes: the identity of an image for duplicate and leak checks."""
    return hashlib.sha256(data).hexdigest()


def image_problem(data: bytes) -> str | None:
    """Return why these bytes are not a decodable image, or None when they decode."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
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
        fp.update(_bloom_build(raw.reshape(-1, 32)))
    return fp


def fingerprint_contains(fp: dict, sha256_hex: str) -> bool:
    """Whether a file with this sha256 was part of the fingerprinted training data."""
    key = np.frombuffer(bytes.fromhex(sha256_hex), dtype=np.uint8)
    if fp["kind"] == "exact":
        hashes = np.asarray(fp["hashes"], dtype=np.uint8)
        return bool((hashes == key).all(axis=1).any())
    bits = np.asarray(fp["bits"], dtype=np.uint8)
    positions = _bloom_positions(key[None, :], int(fp["n_bits"]), int(fp["n_hashes"]))[0]
    return bool(all(bits[p >> 3] & (1 << (p & 7)) for p in positions))


# A Bloom filter is a dozen lines; no maintained library provides one we could depend on.
def _bloom_build(keys: np.ndarray) -> dict:
    n = len(keys)
    n_bits = max(8, math.ceil(-n * math.log(BLOOM_FALSE_POSITIVE_RATE) / math.log(2) ** 2))
    n_hashes = max(1, round(n_bits / n * math.log(2)))
    bits = np.zeros((n_bits + 7) // 8, dtype=np.uint8)
    positions = _bloom_positions(keys, n_bits, n_hashes).ravel()
    np.bitwise_or.at(bits, positions >> 3, (1 << (positions & 7)).astype(np.uint8))
    return {"bits": bits, "n_bits": n_bits, "n_hashes": n_hashes}


def _bloom_positions(keys: np.ndarray, n_bits: int, n_hashes: int) -> np.ndarray:
    # Double hashing (Kirsch-Mitzenmacher): the sha256 bytes are already uniform.
    words = keys[:, :16].copy().view(np.uint64).astype(np.uint64)
    h1, h2 = words[:, 0], words[:, 1] | np.uint64(1)
    i = np.arange(n_hashes, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return ((h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(n_bits)).astype(np.int64)


@dataclass
class Dataset:
    """One split of a suite's data: samples in a fixed order, stable ids, per-sample metadata.

    `ids` are paths relative to the data root (the folder, or the manifest's `root`), so they
    survive moving the data; `metadata` holds a manifest's extra columns, usable as slices.
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
    """The Dataset a suite data source describes: `{path: DIR}` or `{manifest: CSV, root: DIR}`."""
    if spec.manifest is not None:
        return read_manifest(spec.manifest, spec.root)
    classes, samples = scan_image_folder(spec.path)
    root = Path(spec.path)
    ids = [s.path.relative_to(root).as_posix() for s in samples]
    return Dataset(str(spec.path), root, classes, samples, ids, {})


def read_manifest(manifest: str | Path, root: str | Path | None = None) -> Dataset:
    """Read a CSV manifest: columns `path` and `label`, any others kept as metadata.

    Paths are relative to `root` (default: the manifest's folder). Every problem is one line
    naming the file, the line and the column: a missing column, a short row, an empty cell, a
    file that does not exist.
    """
    import csv

    manifest = Path(manifest)
    root = Path(root) if root is not None else manifest.parent
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise InputError(f"{manifest}: manifest not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{manifest}: cannot read the manifest as CSV ({exc})") from None
    if not rows:
        raise InputError(f"{manifest}:1: expected a header with columns path,label, found nothing")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in ("path", "label") if c not in header]
    if missing:
        raise InputError(
            f"{manifest}:1: expected columns path,label, found {','.join(header)} "
            f"(missing {','.join(missing)})"
        )
    if len(rows) == 1:
        raise InputError(f"{manifest}:2: expected at least one row of data, found nothing")
    records = [_manifest_row(manifest, root, header, n, row) for n, row in enumerate(rows[1:], 2)]
    classes = sorted({label for _, label, _ in records})
    index = {c: i for i, c in enumerate(classes)}
    extra = [c for c in header if c not in ("path", "label")]
    return Dataset(
        source=str(manifest),
        root=root,
        class_names=classes,
        samples=[Sample(root / rel, index[label]) for rel, label, _ in records],
        ids=[rel for rel, _, _ in records],
        metadata={c: np.array([meta[c] for _, _, meta in records]) for c in extra},
    )


def _manifest_row(manifest: Path, root: Path, header: list[str], line: int, row: list[str]):
    """One manifest row as (relative path, label, metadata), or InputError naming the cell."""
    if len(row) != len(header):
        raise InputError(f"{manifest}:{line}: expected {len(header)} fields, found {len(row)}")
    cells = dict(zip(header, (c.strip() for c in row), strict=True))
    for column in ("path", "label"):
        if not cells[column]:
            raise InputError(
                f"{manifest}:{line}: column {column!r}: expected a value, found nothing"
            )
    rel = Path(cells["path"]).as_posix()
    if not (root / rel).is_file():
        raise InputError(f"{manifest}:{line}: column 'path': {root / rel} not found")
    return rel, cells["label"], {c: v for c, v in cells.items() if c not in ("path", "label")}


def content_fingerprint(dataset: Dataset) -> str:
    """sha256 over every sample's id and file bytes, in order: the data part of cache keys.

    Content, not size and mtime, so that changing one image (even to the same size, with its
    mtime restored) recomputes. Reading the files costs little next to decoding them, and the
    page cache then serves the decoding pass.
    """
    h = hashlib.sha256()
    # A plain loop: measured 3-7x faster than a thread pool on small image files, where the
    # per-task overhead outweighs the hashing that a pool would overlap.
    for sample_id, sample in zip(dataset.ids, dataset.samples, strict=True):
        try:
            digest = hashlib.sha256(sample.path.read_bytes()).digest()
        except OSError as exc:
            raise InputError(f"{sample.path}: cannot read ({exc.strerror})") from None
        h.update(sample_id.encode() + b"\0" + digest)
    return h.hexdigest()


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
