"""The training-data fingerprint answers membership exactly (small sets) or with a Bloom filter."""

import hashlib

import pytest

from qa import data
from qa.data import fingerprint_contains, fingerprint_from_hashes, sha256_bytes


def _hashes(n: int, tag: str = "train") -> list[str]:
    return [sha256_bytes(f"{tag}-{i}".encode()) for i in range(n)]


def test_exact_fingerprint_knows_its_members_and_nothing_else():
    members = _hashes(50)
    fp = fingerprint_from_hashes(members + members[:5])  # duplicates count once
    assert fp["kind"] == "exact"
    assert (fp["n_files"], fp["n_unique"]) == (55, 50)
    assert all(fingerprint_contains(fp, h) for h in members)
    assert not any(fingerprint_contains(fp, h) for h in _hashes(50, "eval"))


def test_digest_ignores_order_and_changes_with_content():
    members = _hashes(10)
    expected = hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()
    assert fingerprint_from_hashes(members[::-1])["digest"] == expected
    assert fingerprint_from_hashes(members[1:])["digest"] != expected


def test_bloom_fingerprint_has_no_false_negatives_and_rare_false_positives(monkeypatch):
    monkeypatch.setattr(data, "MAX_EXACT_HASHES", 100)
    members = _hashes(2_000)
    fp = fingerprint_from_hashes(members)
    assert fp["kind"] == "bloom" and "hashes" not in fp
    assert all(fingerprint_contains(fp, h) for h in members)
    false_positives = sum(fingerprint_contains(fp, h) for h in _hashes(20_000, "eval"))
    assert false_positives <= 1  # expected 0.02 at the 1e-6 design rate


def test_bloom_filter_is_compact():
    import numpy as np

    from qa import bloom
    from qa.data import BLOOM_FALSE_POSITIVE_RATE

    keys = np.frombuffer(b"".join(bytes.fromhex(h) for h in _hashes(1_000)), np.uint8)
    filt = bloom.build(keys.reshape(-1, 32), BLOOM_FALSE_POSITIVE_RATE)
    # about 29 bits per member at a 1e-6 false-positive rate: far smaller than 256-bit hashes
    assert filt["bits"].nbytes == pytest.approx(1_000 * 28.76 / 8, rel=0.01)
