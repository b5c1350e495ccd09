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
