"""One decode pass per split: every file read once whatever the number of views, only missing
views computed, a cached split not read at all, and no partial entry after a kill."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import forward_counter, save_tiny, write_data, write_shards, write_suite

import qa.application
import qa.data
import qa.data_index
from qa import cache
from qa.application import RunOptions, run_suite

N = 30  # images: three per class


def _corruptions(severities):
    return (
        "- {kind: corruption_accuracy, perturbations: [gaussian_noise, brightness], "
        f"severities: {list(severities)}, min: 0.0}}\n"
    )


@pytest.fixture
def setup(tmp_path):
    data = write_data(tmp_path / "eval", per_class=3)
    ckpt = save_tiny(tmp_path / "cand.pt", seed=2)
    return data, ckpt, tmp_path / "cache"


@pytest.fixture
def reads(monkeypatch):
    """Every image the engine reads through the dataset layer, by path. Files count as settled
    once written (the digest index would otherwise wait qa.data_index.SETTLE_NS to trust them).
    The report's gallery, which reads a few files after the checks, is left out (its own
    bounds: tests/test_gallery.py)."""
    monkeypatch.setattr(qa.data_index, "SETTLE_NS", 0)
    monkeypatch.setattr(qa.application, "build_gallery", lambda *args: {})
    seen: list[str] = []
    original = qa.data.read_bytes
    monkeypatch.setattr(qa.data, "read_bytes", lambda s: seen.append(str(s.path)) or original(s))
    return seen


def _run(tmp_path, data, ckpt, cache_dir, severities, name="suite.yaml"):
    suite = write_suite(tmp_path / name, data, _corruptions(severities))
    options = RunOptions(
        out=None, cache_dir=cache_dir, progress=False, save_predictions_to=tmp_path / "p.npz"
    )
    report = run_suite(suite, ckpt, options)
    with np.load(tmp_path / "p.npz") as saved:
        return report, {k: saved[k] for k in saved.files if k.endswith("/logits")}


@pytest.mark.parametrize("cached", [True, False])
def test_every_file_is_read_once_for_many_views(setup, tmp_path, reads, monkeypatch, cached):
    data, ckpt, cache_dir = setup
    calls = forward_counter(monkeypatch)
    _, logits = _run(tmp_path, data, ckpt, cache_dir if cached else None, [1, 2, 3])
    assert len(logits) == 7  # clean + 2 families x 3 severities
    assert len(reads) == N and len(set(reads)) == N
    assert sum(calls) == 7 * N


def test_a_new_view_computes_only_itself_and_an_unchanged_suite_reads_nothing(
    setup, tmp_path, reads, monkeypatch
):
    data, ckpt, cache_dir = setup
    _, first = _run(tmp_path, data, ckpt, cache_dir, [1])
    reads.clear()
    calls = forward_counter(monkeypatch)
    _, second = _run(tmp_path, data, ckpt, cache_dir, [1, 2])  # two new views
    assert sum(calls) == 2 * N and len(reads) == N
    for key, value in first.items():
        np.testing.assert_array_equal(second[key], value)
    reads.clear()
    calls.clear()
    _, third = _run(tmp_path, data, ckpt, cache_dir, [1, 2])
    assert reads == [] and calls == []
    for key, value in second.items():
        np.testing.assert_array_equal(third[key], value)


def test_one_pass_gives_the_logits_of_a_pass_per_view(setup, tmp_path):
    data, ckpt, _ = setup
    _, together = _run(tmp_path, data, ckpt, None, [1, 2])
    for severity in (1, 2):
        _, alone = _run(tmp_path, data, ckpt, None, [severity], name=f"s{severity}.yaml")
        for key, value in alone.items():
            np.testing.assert_array_equal(together[key], value)


def test_views_are_read_back_memory_mapped(setup, tmp_path):
    from qa.application import evidence_request
    from qa.engine import build_evidence
    from qa.formats import load_any
    from qa.runner import plan
    from qa.suite import load_suite

    data, ckpt, cache_dir = setup
    suite = load_suite(write_suite(tmp_path / "s.yaml", data, _corruptions([1, 2])))
    model = load_any(ckpt)
    models = {"candidate": model, "baseline": None}
    for folder in (cache_dir, None):
        options = RunOptions(cache_dir=folder, progress=False)
        request = evidence_request(suite, models, plan(suite), "cpu", options)
        evidence = build_evidence(request)
        assert len(evidence.arrays) == 5
        assert all(isinstance(evidence.arrays[v], np.memmap) for v in evidence.arrays)


def test_a_kill_during_a_pass_leaves_no_partial_entry(setup, tmp_path):
    data, ckpt, cache_dir = setup
    suite = write_suite(tmp_path / "s.yaml", data, _corruptions([1, 2, 3, 4, 5]))
    command = [sys.executable, "-m", "qa", "run", str(suite), str(ckpt)]
    command += ["--out", str(tmp_path / "r"), "--cache-dir", str(cache_dir), "--batch-size", "1"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(cache_dir.glob(f"{cache.TMP_DIR}/*.npy")):
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the pass: 11 views, one image per batch
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list(cache_dir.glob(f"{cache.TMP_DIR}/*.npy"))  # killed mid-pass
    assert not list(cache_dir.rglob("*.npy.json")) and not list(cache_dir.glob("??/*.npy"))
    report, logits = _run(tmp_path, data, ckpt, cache_dir, [1, 2, 3, 4, 5])
    assert report.exit_code == 0 and len(logits) == 11
    assert not list(cache_dir.glob(f"{cache.TMP_DIR}/*.npy"))  # the dead run's files swept
    assert len(list(cache_dir.rglob("*.npy.json"))) == 11


def test_tar_shards_and_the_image_folder_give_the_same_result(setup, tmp_path, monkeypatch):
    data, ckpt, _ = setup
    monkeypatch.chdir(tmp_path)
    pattern = write_shards(data, tmp_path / "shards", n=3)
    results = []
    for source, name in ((str(data), "folder.yaml"), (f"{{shards: '{pattern}'}}", "tar.yaml")):
        report, logits = _run(tmp_path, source, ckpt, None, [1, 2], name=name)
        results.append(({o.name: o.result.metrics for o in report.outcomes}, logits))
    assert results[0][0] == results[1][0]
    assert results[0][1].keys() == results[1][1].keys()
    for key, value in results[0][1].items():
        np.testing.assert_array_equal(results[1][1][key], value)


def test_entries_are_keyed_on_the_bytes_the_pass_decoded(setup, tmp_path, reads, monkeypatch):
    data, ckpt, cache_dir = setup
    _run(tmp_path, data, ckpt, cache_dir, [1])  # the digest index now knows every file
    images = sorted(p for p in data.rglob("*.png"))
    kept, swapped = images[0].read_bytes(), images[1].read_bytes()
    original = qa.data.read_bytes

    def replaced(sample):  # the first image is replaced on disk once the pass has begun
        if sample.path == images[0]:
            images[0].write_bytes(swapped)
        return original(sample)

    monkeypatch.setattr(qa.data, "read_bytes", replaced)
    _run(tmp_path, data, ckpt, cache_dir, [2], name="other.yaml")
    monkeypatch.setattr(qa.data, "read_bytes", original)
    images[0].write_bytes(kept)  # back to the content the first fingerprint was taken of
    calls = forward_counter(monkeypatch)
    _, cached = _run(tmp_path, data, ckpt, cache_dir, [2], name="other.yaml")
    assert sum(calls) == 2 * N  # the severity-2 views decoded from the replaced bytes: not reused
    _, fresh = _run(tmp_path, data, ckpt, None, [2], name="other.yaml")
    for key, value in fresh.items():
        np.testing.assert_array_equal(cached[key], value)
