"""A Bloom filter over sha256 digests: the compact training-data fingerprint beyond
qa.data.MAX_EXACT_HASHES files. A dozen lines; no maintained library provides one we could
depend on."""

import math

import numpy as np


def build(keys: np.ndarray, false_positive_rate: float) -> dict:
    """The filter of `keys` (uint8 rows of 32 sha256 bytes): bits, n_bits, n_hashes, sized for
    `false_positive_rate` (no false negatives)."""
    n = len(keys)
    n_bits = max(8, math.ceil(-n * math.log(false_positive_rate) / math.log(2) ** 2))
    n_hashes = max(1, round(n_bits / n * math.log(2)))
    bits = np.zeros((n_bits + 7) // 8, dtype=np.uint8)
    where = positions(keys, n_bits, n_hashes).ravel()
    np.bitwise_or.at(bits, where >> 3, (1 << (where & 7)).astype(np.uint8))
    return {"bits": bits, "n_bits": n_bits, "n_hashes": n_hashes}


def positions(keys: np.ndarray, n_bits: int, n_hashes: int) -> np.ndarray:
    """The `n_hashes` bit positions of each key in a filter of `n_bits` bits."""
    # Double hashing (Kirsch-Mitzenmacher): the sha256 bytes are already uniform.
    words = keys[:, :16].copy().view(np.uint64).astype(np.uint64)
    h1, h2 = words[:, 0], words[:, 1] | np.uint64(1)
    i = np.arange(n_hashes, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return ((h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(n_bits)).astype(np.int64)
