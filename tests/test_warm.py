"""A warm run (issue 16): a re-run whose views are all cached takes the checkpoint's facts from
the cache (qa.facts) and never imports torch; a file with other bytes is never served them."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DIGITS, save_tiny, write_suite

import qa.facts
from qa import data_index
from qa.application import RunOptions, run_suite
from qa.errors import InputError
from qa.facts import LazyModel, facts_key, load_checkpoint, read_facts, write_facts
from qa.formats import load_bytes

CHECKS = """\
- {kind: top1_accuracy, min: 0}
- {kind: per_class_recall, min: 0}
- {kind: macro_f1, min: 0}
- {kind: ece, max: 1}
- {kind: nll, max: 100}
"""
HEAVY = ("torch", "torchvision", "great_expectations")


def _qa(args: list[str], cwd: Path, check_modules: bool = False) -> subprocess.CompletedProcess:
    """`qa ARGS` in a fresh interpreter; with `check_modules`, fails if it imported HEAVY."""
    code = (
        "import sys\nfrom qa.cli import main\n"
        f"code = main({args!r})\n"
        f"heavy = set({HEAVY!r}) & {{m.split('.')[0] for m in sys.modules}}\n"
        f"assert not ({check_modules!r} and heavy), f'{{heavy}} imported'\n"
        "sys.exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)


def _checks(result: Path) -> list:
    doc = json.loads(result.read_text())
    return [(c["name"], c["status"], c["message"], c["metrics"]) for c in doc["checks"]]


def _cold_then_warm(data, ckpt, tmp_path, checks: str) -> tuple[list, dict, dict]:
    """`qa run` cold, then warm with every module import watched (HEAVY must stay out): the
    command, and the cold and warm result documents, which must have the same exit code."""
    suite = write_suite(tmp_path / "suite.yaml", data, checks)
    run = ["run", str(suite), str(ckpt), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    cold = _qa([*run, "--out", str(tmp_path / "cold")], tmp_path)
    assert cold.returncode in (0, 1), cold.stderr
    warm = _qa([*run, "--out", str(tmp_path / "warm")], tmp_path, check_modules=True)
    assert warm.returncode == cold.returncode, warm.stderr
    before, after = (
        json.loads((tmp_path / d / "result.json").read_text()) for d in ("cold", "warm")
    )
    return run, before, after


def test_a_warm_run_imports_no_torch_and_finds_what_the_cold_run_found(data, ckpt, tmp_path):
    _, before, after = _cold_then_warm(data, ckpt, tmp_path, CHECKS)
    assert before["exit_code"] == 0
    assert _checks(tmp_path / "warm" / "result.json") == _checks(tmp_path / "cold" / "result.json")
    for key in ("verdict", "checkpoint", "overview", "environment"):
        assert after[key] == before[key], key
    assert after["gallery"]["confident_mistakes"]["total"] > 0


def test_a_changed_checkpoint_is_never_served_the_facts_of_the_old_one(data, tmp_path):
    path, cache = tmp_path / "model.pt", tmp_path / "cache"
    suite = write_suite(tmp_path / "suite.yaml", data, CHECKS)
    options = RunOptions(cache_dir=cache, out=None, progress=False)
    save_tiny(path, seed=1)
    first = run_suite(suite, path, options)
    save_tiny(path, seed=1, class_names=DIGITS[::-1])  # same weights, the classes reversed
    second = run_suite(suite, path, options)
    assert second.checkpoint["sha256"] != first.checkpoint["sha256"]
    assert second.overview["class_names"] == DIGITS[::-1]
    fresh = run_suite(suite, path, RunOptions(cache_dir=None, out=None, progress=False))
    assert [o.result.metrics for o in second.outcomes] == [o.result.metrics for o in fresh.outcomes]


def test_a_missing_view_loads_the_model_from_the_bytes_that_were_hashed(data, ckpt, tmp_path):
    cache = tmp_path / "cache"
    options = RunOptions(cache_dir=cache, out=None, progress=False)
    run_suite(write_suite(tmp_path / "a.yaml", data, CHECKS), ckpt, options)
    model = load_checkpoint(ckpt, None, False, cache, load_bytes)
    assert isinstance(model, LazyModel) and "module" not in vars(model)
    more = (
        CHECKS
        + "- {kind: corruption_accuracy, perturbations: [brightness], severities: [2], min: 0}\n"
    )
    suite = write_suite(tmp_path / "b.yaml", data, more)
    warm = run_suite(suite, ckpt, options)
    cold = run_suite(suite, ckpt, RunOptions(cache_dir=None, out=None, progress=False))
    assert [o.result.metrics for o in warm.outcomes] == [o.result.metrics for o in cold.outcomes]


def test_a_record_that_disagrees_with_its_file_is_a_bug_not_a_result(ckpt, tmp_path):
    cache = tmp_path / "cache"
    loaded = load_checkpoint(ckpt, None, False, cache, load_bytes)
    key = facts_key(loaded.digest, None, False)
    facts = {**read_facts(cache, key), "class_names": DIGITS[::-1]}
    write_facts(cache, key, facts)  # as if forged: the checksum agrees with the facts
    lazy = load_checkpoint(ckpt, None, False, cache, load_bytes)
    assert lazy.class_names == DIGITS[::-1]
    with pytest.raises(RuntimeError, match="disagrees"):
        lazy.module  # noqa: B018 - loading is the point


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r.replace('"arch": "resnet18"', '"arch": "resnet50"'),  # checksum disagrees
        lambda r: r[: len(r) // 2],  # truncated
        lambda r: json.dumps({**json.loads(r), "facts": {"arch": "resnet18"}}),  # keys missing
    ],
)
def test_an_unsound_record_means_loading_the_file(ckpt, tmp_path, damage):
    cache = tmp_path / "cache"
    loaded = load_checkpoint(ckpt, None, False, cache, load_bytes)
    record = next(cache.rglob("*.facts.json"))
    record.write_text(damage(record.read_text()))
    again = load_checkpoint(ckpt, None, False, cache, load_bytes)
    assert not isinstance(again, LazyModel) and again.class_names == loaded.class_names


def test_facts_json_would_change_are_not_stored(tmp_path):
    facts = {
        "arch": "resnet18",
        "class_names": ["a", "b"],
        "preprocessing": {"crop": 16},
        "provenance": {"sizes": (1, 2)},  # JSON gives a list back
        "temperature": 1.0,
    }
    write_facts(tmp_path, "k" * 64, facts)
    assert read_facts(tmp_path, "k" * 64) is None
    write_facts(tmp_path, "k" * 64, {**facts, "provenance": {"sizes": [1, 2]}})
    assert read_facts(tmp_path, "k" * 64)["provenance"] == {"sizes": [1, 2]}


def test_a_trained_checkpoints_data_fingerprint_is_a_fact_and_a_warm_run_needs_no_torch(
    data, tmp_path
):
    """The trainer records its training data's hashes (an array) in provenance: the record
    holds them by dtype, shape and bytes, so a warm run of a trained checkpoint imports no
    torch and its leakage check finds the same leaked files."""
    from qa.data import fingerprint_from_hashes, sha256_bytes

    leaked = sorted(Path(data).rglob("*.png"))[:3]
    fingerprint = fingerprint_from_hashes([sha256_bytes(p.read_bytes()) for p in leaked])
    ckpt = save_tiny(tmp_path / "trained.pt", seed=5, provenance={"data_fingerprint": fingerprint})
    suite = write_suite(tmp_path / "suite.yaml", data, CHECKS + "- {kind: leakage}\n")
    run = ["run", str(suite), str(ckpt), "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    cold = _qa([*run, "--out", str(tmp_path / "cold")], tmp_path)
    warm = _qa([*run, "--out", str(tmp_path / "warm")], tmp_path, check_modules=True)
    assert warm.returncode == cold.returncode == 1, (cold.stderr, warm.stderr)
    assert _checks(tmp_path / "warm" / "result.json") == _checks(tmp_path / "cold" / "result.json")
    leakage = next(c for c in _checks(tmp_path / "warm" / "result.json") if c[0] == "leakage")
    assert leakage[1] == "fail"


def test_arrays_come_back_exactly_or_are_not_stored(tmp_path):
    import numpy as np

    hashes = np.arange(64, dtype=np.uint8).reshape(2, 32)
    facts = {
        "arch": "resnet18",
        "class_names": ["a"],
        "preprocessing": {},
        "provenance": {"data_fingerprint": {"kind": "exact", "hashes": hashes}},
        "temperature": 1.0,
    }
    write_facts(tmp_path, "a" * 64, facts)
    back = read_facts(tmp_path, "a" * 64)["provenance"]["data_fingerprint"]["hashes"]
    assert back.dtype == np.uint8 and back.shape == (2, 32) and (back == hashes).all()
    objects = {**facts, "provenance": {"x": np.array([{"a": 1}], dtype=object)}}
    write_facts(tmp_path, "b" * 64, objects)
    assert read_facts(tmp_path, "b" * 64) is None


def test_trust_and_the_suite_model_are_part_of_the_key():
    assert facts_key("d" * 64, None, False) != facts_key("d" * 64, None, True)
    assert facts_key("d" * 64, None, False) != facts_key("e" * 64, None, False)


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_help_imports_no_numpy_pydantic_rich_or_jinja(argv, tmp_path):
    """`qa --help` answers at once: the commands import the reports, the suite schema and rich
    when they run, and building the parser reads no report registry."""
    code = (
        "import sys\nfrom qa.cli import main\n"
        f"code = main({argv!r})\n"
        "heavy = {'numpy', 'pydantic', 'rich', 'jinja2', 'yaml'}\n"
        "heavy &= {m.split('.')[0] for m in sys.modules}\n"
        "assert not heavy, f'{heavy} imported'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


DATA_CHECKS = """\
- {kind: label_set}
- {kind: min_samples_per_class, min: 1}
- {kind: class_balance, max_ratio: 10}
- {kind: image_size, min_width: 8, min_height: 8}
- {kind: decodable}
- {kind: exact_duplicates}
- {kind: near_duplicates}
- {kind: expectation, expectation: ExpectColumnValuesToBeBetween, kwargs: {column: width, min_value: 8}}
"""


def test_a_warm_run_of_data_checks_imports_no_great_expectations(data, ckpt, tmp_path):
    _cold_then_warm(data, ckpt, tmp_path, CHECKS + DATA_CHECKS)
    assert _checks(tmp_path / "warm" / "result.json") == _checks(tmp_path / "cold" / "result.json")


def test_a_warm_run_with_perturbations_shows_the_same_strips_without_torch(data, ckpt, tmp_path):
    more = (
        "- {kind: corruption_accuracy, perturbations: [gaussian_noise], severities: [2], min: 0}\n"
    )
    run, before, after = _cold_then_warm(data, ckpt, tmp_path, CHECKS + more)
    strips = after["gallery"]["perturbations"]["shown"]
    assert [s["perturbation"] for s in strips] == ["gaussian_noise"]
    assert strips == before["gallery"]["perturbations"]["shown"]
    # a kept strip that was tampered with is made again, never shown
    tables = [p for p in (tmp_path / "cache").glob("??/*.json") if '"uris"' in p.read_text()]
    (kept,) = [p for p in tables if len(json.loads(p.read_text())["columns"]["uris"]) == 6]
    entry = json.loads(kept.read_text())
    entry["columns"]["uris"][3] = entry["columns"]["uris"][0]  # the checksum now disagrees
    kept.write_text(json.dumps(entry))
    again = _qa([*run, "--out", str(tmp_path / "again")], tmp_path)
    assert again.returncode == 0, again.stderr
    remade = json.loads((tmp_path / "again" / "result.json").read_text())
    assert remade["gallery"]["perturbations"]["shown"] == strips


@pytest.fixture
def settled(monkeypatch):
    """Files count as settled once written: these tests need not wait SETTLE_NS."""
    monkeypatch.setattr(data_index, "SETTLE_NS", 0)


@pytest.fixture
def ckpt_reads(monkeypatch):
    """Every checkpoint read through qa.facts.read_file, by path."""
    seen = []
    real = qa.facts.read_file

    def counting(path):
        seen.append(str(path))
        return real(path)

    monkeypatch.setattr(qa.facts, "read_file", counting)
    return seen


def test_a_settled_checkpoint_is_stat_ed_not_read_and_an_edit_is_read_again(
    tmp_path, settled, ckpt_reads
):
    path, cache = tmp_path / "model.pt", tmp_path / "cache"
    save_tiny(path, seed=1)
    loaded = load_checkpoint(path, None, False, cache, load_bytes)
    assert ckpt_reads == [str(path)] and not isinstance(loaded, LazyModel)
    warm = load_checkpoint(path, None, False, cache, load_bytes)
    assert ckpt_reads == [str(path)]  # the digest index vouched: not read again
    assert isinstance(warm, LazyModel) and warm.digest == loaded.digest
    assert load_checkpoint(path, None, False, cache, load_bytes, rehash=True).digest == warm.digest
    assert ckpt_reads == [str(path)] * 2  # --rehash reads it whatever the index says
    before = path.stat()
    save_tiny(path, seed=2)  # other weights; the old mtime put back: the ctime still moves
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    edited = load_checkpoint(path, None, False, cache, load_bytes)
    assert ckpt_reads[-1] == str(path) and len(ckpt_reads) == 3
    assert edited.digest == hashlib.sha256(path.read_bytes()).hexdigest() != loaded.digest


def test_a_checkpoint_changed_after_its_facts_were_served_is_not_loaded(tmp_path, settled):
    path, cache = tmp_path / "model.pt", tmp_path / "cache"
    save_tiny(path, seed=1)
    load_checkpoint(path, None, False, cache, load_bytes)
    lazy = load_checkpoint(path, None, False, cache, load_bytes)
    save_tiny(path, seed=2)  # between the facts and the first view the cache lacks
    with pytest.raises(InputError, match=f"^{path}: the checkpoint changed during the run"):
        lazy.module  # noqa: B018 - loading is the point


def test_a_checkpoint_written_just_now_is_not_vouched_for(tmp_path, ckpt_reads):
    path, cache = tmp_path / "model.pt", tmp_path / "cache"
    save_tiny(path, seed=1)  # within SETTLE_NS of its read: its digest may predate an edit
    load_checkpoint(path, None, False, cache, load_bytes)
    assert isinstance(load_checkpoint(path, None, False, cache, load_bytes), LazyModel)
    assert ckpt_reads == [str(path)] * 2
