"""The evidence cache: hits skip the model, any change recomputes, a bad entry is never trusted."""

import json

import numpy as np
import pytest
from helpers import forward_counter, save_tiny, write_data, write_suite

from qa import cache
from qa.application import RunOptions, run_suite

CHECKS = "- {kind: top1_accuracy, min: 0.0}\n"
N = 30  # images: three per class


@pytest.fixture
def setup(tmp_path):
    data = write_data(tmp_path / "eval", per_class=3)
    suite = write_suite(tmp_path / "suite.yaml", data, CHECKS)
    ckpt = save_tiny(tmp_path / "cand.pt", seed=2)
    return data, suite, ckpt, tmp_path / "cache"


def _run(suite, ckpt, cache_dir, tmp_path):
    """Run the suite; return the eval logits (from the saved predictions)."""
    options = RunOptions(
        out=None, cache_dir=cache_dir, progress=False, save_predictions_to=tmp_path / "pred.npz"
    )
    run_suite(suite, ckpt, options)
    with np.load(tmp_path / "pred.npz") as saved:
        return saved["candidate/eval/clean/logits"]


def _entries(cache_dir):
    return sorted(cache_dir.rglob("*.npy"))


def test_a_second_run_reads_the_cache_and_never_calls_the_model(setup, tmp_path, monkeypatch):
    _, suite, ckpt, cache_dir = setup
    calls = forward_counter(monkeypatch)
    first = _run(suite, ckpt, cache_dir, tmp_path)
    assert sum(calls) == N and len(_entries(cache_dir)) == 1
    calls.clear()
    second = _run(suite, ckpt, cache_dir, tmp_path)
    assert calls == []
    np.testing.assert_array_equal(first, second)


def test_no_cache_recomputes_and_writes_nothing(setup, tmp_path, monkeypatch):
    _, suite, ckpt, cache_dir = setup
    calls = forward_counter(monkeypatch)
    _run(suite, ckpt, None, tmp_path)
    _run(suite, ckpt, None, tmp_path)
    assert sum(calls) == 2 * N and not cache_dir.exists()


def test_another_checkpoint_misses(setup, tmp_path, monkeypatch):
    _, suite, ckpt, cache_dir = setup
    _run(suite, ckpt, cache_dir, tmp_path)
    calls = forward_counter(monkeypatch)
    _run(suite, save_tiny(tmp_path / "other.pt", seed=3), cache_dir, tmp_path)
    assert sum(calls) == N and len(_entries(cache_dir)) == 2


def test_changing_one_image_recomputes(setup, tmp_path, monkeypatch):
    data, suite, ckpt, cache_dir = setup
    before = _run(suite, ckpt, cache_dir, tmp_path)
    image = sorted((data / "4").iterdir())[0]
    from PIL import Image

    with Image.open(image) as img:
        pixels = np.asarray(img).copy()
    Image.fromarray(255 - pixels).save(image)  # same file name, new content
    calls = forward_counter(monkeypatch)
    after = _run(suite, ckpt, cache_dir, tmp_path)
    assert sum(calls) == N
    changed = np.flatnonzero(np.abs(after - before).max(axis=1) > 1e-6)
    assert changed.tolist() == [12]  # the first image of class 4


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tamper", "wrong_ids"])
def test_a_damaged_entry_is_recomputed_with_an_identical_result(
    setup, tmp_path, monkeypatch, damage
):
    _, suite, ckpt, cache_dir = setup
    before = _run(suite, ckpt, cache_dir, tmp_path)
    (entry,) = _entries(cache_dir)
    raw = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"\0" * len(raw))
    elif damage == "tamper":
        logits = np.load(entry)
        logits[0, 0] += 1.0  # the stored checksum no longer matches
        np.save(entry, logits)
    else:  # a record written for other sample ids
        record = entry.with_name(entry.name + ".json")
        meta = json.loads(record.read_text())
        record.write_text(json.dumps(meta | {"ids": "0" * 64}))
    calls = forward_counter(monkeypatch)
    after = _run(suite, ckpt, cache_dir, tmp_path)
    assert sum(calls) == N
    np.testing.assert_array_equal(after, before)
    calls.clear()
    _run(suite, ckpt, cache_dir, tmp_path)  # the rewritten entry is sound again
    assert calls == []


def test_the_key_covers_every_part(tmp_path):
    parts = {"model": "a", "data": "b", "view": ["logits", None, None], "device": "cpu"}
    key = cache.entry_key(parts)
    assert cache.entry_key(dict(parts)) == key
    for name in parts:
        assert cache.entry_key({**parts, name: "changed"}) != key


def _read_only(monkeypatch, folder):
    """Make `folder` and what is under it read-only: by mode, and, since root ignores modes,
    by failing what a read-only folder refuses (removing and creating files)."""
    import tempfile
    from pathlib import Path

    def inside(path) -> bool:
        path = Path(path)
        return path == folder or folder in path.parents

    real_unlink, real_mkstemp = Path.unlink, tempfile.mkstemp

    def unlink(self, missing_ok=False):
        if inside(self):
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and inside(dir):
            raise PermissionError(13, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    for d in [folder, *folder.iterdir()]:
        d.chmod(0o555)


def test_a_corrupt_entry_in_a_read_only_cache_warns_once_and_is_recomputed(
    setup, tmp_path, monkeypatch, capsys
):
    _, suite, ckpt, cache_dir = setup
    before = _run(suite, ckpt, cache_dir, tmp_path)
    (entry,) = _entries(cache_dir)
    entry.write_bytes(b"\0" * 64)  # corrupt, and it cannot be removed or rewritten
    _read_only(monkeypatch, cache_dir)
    calls = forward_counter(monkeypatch)
    capsys.readouterr()
    try:
        after = _run(suite, ckpt, cache_dir, tmp_path)
    finally:
        for d in [cache_dir, *cache_dir.iterdir()]:
            d.chmod(0o755)
    assert sum(calls) == N
    np.testing.assert_array_equal(after, before)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: cannot write the cache entry"), err
    assert entry.read_bytes() == b"\0" * 64
