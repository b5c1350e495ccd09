"""The fingerprint index: a warm fingerprint reads no image, a changed file is read again."""

import hashlib
import os
import time
from pathlib import Path

import pytest
from helpers import write_shards

from qa import data, data_index
from qa.data import content_fingerprint, load_dataset
from qa.suite_models import DataSpec


@pytest.fixture
def reads(monkeypatch):
    """Every image read through qa.data.read_bytes, by sample."""
    seen = []
    real = data.read_bytes

    def counting(sample):
        seen.append(sample.where)
        return real(sample)

    monkeypatch.setattr(data, "read_bytes", counting)
    return seen


@pytest.fixture
def settled(monkeypatch):
    """Files count as settled once written: these tests need not wait SETTLE_NS."""
    monkeypatch.setattr(data_index, "SETTLE_NS", 0)


def _by_hand(dataset) -> str:
    """The fingerprint as qa computed it before the index: read and hash every file."""
    h = hashlib.sha256()
    for sample_id, sample in zip(dataset.ids, dataset.samples, strict=True):
        h.update(sample_id.encode() + b"\0" + hashlib.sha256(sample.path.read_bytes()).digest())
    return h.hexdigest()


def test_a_warm_fingerprint_reads_nothing_and_a_changed_file_is_read_again(
    tiny_digits, tmp_path, reads, settled
):
    cache = tmp_path / "cache"
    dataset = load_dataset(DataSpec(path=str(tiny_digits / "val")))
    cold = content_fingerprint(dataset, cache)
    assert cold == _by_hand(dataset) == content_fingerprint(dataset)
    assert len(reads) == 2 * len(dataset.ids)  # cold with the index, then without
    reads.clear()
    assert content_fingerprint(dataset, cache) == cold and reads == []

    touched, edited = dataset.samples[1].path, dataset.samples[5].path
    os.utime(touched, ns=(time.time_ns(), time.time_ns() - 10**9))
    assert content_fingerprint(dataset, cache) == cold and reads == [str(touched)]
    reads.clear()
    raw = bytearray(edited.read_bytes())
    raw[-20] ^= 0xFF  # the same size, other bytes, and the old mtime put back
    before = edited.stat()
    edited.write_bytes(bytes(raw))
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    changed = content_fingerprint(dataset, cache)
    assert changed != cold and changed == _by_hand(dataset) and reads == [str(edited)]
    reads.clear()
    assert content_fingerprint(dataset, cache) == changed and reads == []
    assert content_fingerprint(dataset, cache, rehash=True) == changed
    assert len(reads) == len(dataset.ids)


def test_a_corrupt_or_altered_index_is_never_trusted(tiny_digits, tmp_path, reads, settled):
    cache = tmp_path / "cache"
    dataset = load_dataset(DataSpec(path=str(tiny_digits / "val")))
    expected = content_fingerprint(dataset, cache)
    (index,) = (cache / "index").iterdir()
    text = index.read_text()
    first_digest = data_index.known_digests(dataset, cache)[0]
    for damaged in (text[: len(text) // 2], "[]", text.replace(first_digest, "0" * 64)):
        index.write_text(damaged)
        reads.clear()
        assert data_index.known_digests(dataset, cache) == [None] * len(dataset.ids)
        assert content_fingerprint(dataset, cache) == expected
        assert len(reads) == len(dataset.ids)


def test_a_file_changed_while_it_was_read_is_not_remembered(tiny_digits, tmp_path, reads):
    # The real SETTLE_NS: these files were just written, so a digest could predate an edit
    # in the same timestamp tick; they are read again until they have settled.
    cache = tmp_path / "cache"
    dataset = load_dataset(DataSpec(path=str(tiny_digits / "val")))
    content_fingerprint(dataset, cache)
    reads.clear()
    content_fingerprint(dataset, cache)
    assert len(reads) == len(dataset.ids)
    digests = [hashlib.sha256(s.path.read_bytes()).hexdigest() for s in dataset.samples]
    data_index.remember(dataset, digests, cache, since_ns=time.time_ns() + 3 * 10**9)
    assert data_index.known_digests(dataset, cache) == digests  # settled by then


def test_shards_are_indexed_per_shard_and_a_touched_shard_is_read_again(
    tiny_digits, tmp_path, reads, settled
):
    cache = tmp_path / "cache"
    pattern = write_shards(tiny_digits / "val", tmp_path / "shards", n=2)
    dataset = load_dataset(DataSpec(shards=pattern))
    cold = content_fingerprint(dataset, cache)
    assert len(list((cache / "index").iterdir())) == 2
    reads.clear()
    assert content_fingerprint(dataset, cache) == cold and reads == []
    os.utime(tmp_path / "shards" / "val-001.tar")
    assert content_fingerprint(dataset, cache) == cold
    assert reads and all(r.startswith(str(tmp_path / "shards" / "val-001.tar:")) for r in reads)
    assert len(reads) == sum(s.path.name == "val-001.tar" for s in dataset.samples)


def test_a_cache_folder_that_cannot_be_written_warns_once(tiny_digits, tmp_path, capsys):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    dataset = load_dataset(DataSpec(shards=write_shards(tiny_digits / "val", tmp_path / "s")))
    digests = [None if i == 0 else "ab" * 32 for i in range(len(dataset.ids))]
    data_index.remember(dataset, digests, blocked, since_ns=time.time_ns() + 3 * 10**9)
    assert capsys.readouterr().err.count("warning: cannot write the data index") == 1
    assert content_fingerprint(dataset, blocked) == content_fingerprint(dataset)


def test_only_stats_decide_what_is_known(tiny_digits, tmp_path, settled, monkeypatch):
    cache = tmp_path / "cache"
    dataset = load_dataset(DataSpec(path=str(tiny_digits / "val")))
    content_fingerprint(dataset, cache)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read an image"))
    monkeypatch.setattr(data, "read_bytes", lambda sample: pytest.fail("read an image"))
    assert None not in data_index.known_digests(dataset, cache)
    assert data_index.known_digests(dataset, cache, rehash=True) == [None] * len(dataset.ids)


def test_a_cached_profile_is_found_without_reading_an_image(tiny_digits, tmp_path, reads, settled):
    import numpy as np

    from qa import profile_views
    from qa.inference import Split
    from qa.profile import PROFILE_EVAL

    cache = tmp_path / "cache"
    dataset = load_dataset(DataSpec(path=str(tiny_digits / "val")))
    labels = np.array([s.label for s in dataset.samples])
    first = profile_views.compute_profiles([PROFILE_EVAL], {"eval": Split(dataset, labels)}, cache)
    assert len(reads) == 2 * len(dataset.ids)  # the fingerprint, then the profile
    reads.clear()
    again = profile_views.compute_profiles([PROFILE_EVAL], {"eval": Split(dataset, labels)}, cache)
    assert again["eval"].equals(first["eval"]) and reads == []


def test_a_run_judges_the_data_as_its_scan_found_it_stat_ing_each_file_once(
    tiny_digits, tmp_path, monkeypatch, settled
):
    cache = tmp_path / "cache"
    dataset = load_dataset(DataSpec(path=str(tiny_digits / "val")))
    content_fingerprint(dataset, cache)
    stats = []
    real = data_index._stat
    monkeypatch.setattr(data_index, "_stat", lambda f: stats.append(f) or real(f))
    now = data_index.known_digests(dataset, cache)
    assert len(stats) == len(dataset.ids) and None not in now
    stats.clear()
    assert data_index.known_digests(dataset, cache, scanned=True) == now and stats == []
    edited = dataset.samples[3].path
    edited.write_bytes(edited.read_bytes() + b"\0")
    # the scan's stats are the snapshot a run judges; anyone else stats the file now
    assert data_index.known_digests(dataset, cache, scanned=True) == now
    assert data_index.known_digests(dataset, cache)[3] is None
    rescanned = load_dataset(DataSpec(path=str(tiny_digits / "val")))
    assert data_index.known_digests(rescanned, cache, scanned=True)[3] is None
