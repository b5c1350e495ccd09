"""Per-slice gates: Holm's step-down on bounds, the worst slice, small slices, slice_gap."""

import numpy as np
import pytest
from scipy.stats import binomtest

from qa.checks import REGISTRY, load_all
from qa.checks.slice_gap import gap_metrics
from qa.evidence import CLEAN, Evidence
from qa.runner import run_checks
from qa.slicing import run_sliced
from qa.suite import load_suite

load_all()
TOP1 = REGISTRY["top1_accuracy"]


def _evidence(groups: dict[str, tuple[int, int]], method: str = "wilson") -> Evidence:
    """Samples of each group (name: (right, total)); 3 classes, one-hot logits."""
    column, right = [], []
    for name, (k, n) in groups.items():
        column += [name] * n
        right += [True] * k + [False] * (n - k)
    labels = np.arange(len(right)) % 3
    pred = np.where(right, labels, (labels + 1) % 3)
    return Evidence(
        class_names=["a", "b", "c"],
        labels=labels,
        sample_ids=[f"s{i}" for i in range(len(right))],
        arrays={CLEAN: np.eye(3, dtype=np.float32)[pred] * 4},
        metadata={"camera": np.array(column)},
        interval_method=method,
    )


def _holm_on_p_values(p_values: dict[str, float], alpha: float) -> set[str]:
    """Holm's step-down as textbooks write it: reject in order while p_(i) <= alpha / (m - i)."""
    ordered = sorted(p_values, key=p_values.get)
    rejected = set()
    for i, name in enumerate(ordered):
        if p_values[name] > alpha / (len(ordered) - i):
            break
        rejected.add(name)
    return rejected


def test_holm_on_bounds_passes_exactly_the_slices_holm_on_p_values_rejects():
    rng = np.random.default_rng(3)
    minimum, alpha, differed = 0.7, 0.05, 0
    for _ in range(30):
        groups = {}
        for j in range(int(rng.integers(2, 7))):
            n = int(rng.integers(20, 120))
            groups[f"g{j}"] = (int(rng.binomial(n, rng.uniform(0.7, 0.95))), n)
        ev = _evidence(groups, "clopper_pearson")
        ev.confidence = 1 - alpha
        result = run_sliced(TOP1, TOP1.params(min=minimum), ev, "camera", 1)
        passed = {r["value"] for r in result.slices if r["status"] == "pass"}
        # the exact test of H0 "accuracy <= min" that a Clopper-Pearson lower bound inverts
        p = {
            g: binomtest(k, n, minimum, alternative="greater").pvalue
            for g, (k, n) in groups.items()
        }
        assert passed == _holm_on_p_values(p, alpha)
        assert result.status == ("pass" if passed == set(groups) else "fail")
        differed += passed != {g for g, v in p.items() if v <= alpha}  # uncorrected
    assert differed > 0  # the correction mattered in some draws


def test_one_slice_below_the_threshold_fails_the_check_the_aggregate_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text(
        "name: t\ndata:\n  eval: d\nchecks:\n"
        "  - {kind: top1_accuracy, name: all, min: 0.8}\n"
        "  - {kind: top1_accuracy, name: per camera, min: 0.8, slices: {column: camera}}\n"
    )
    whole, sliced = run_checks(
        load_suite("suite.yaml"), _evidence({"A": (200, 200), "B": (20, 40)})
    )
    assert whole.status == "pass"
    assert sliced.status == "fail"
    assert "1 of 2 slices not passed" in sliced.result.message
    assert "worst camera=B" in sliced.result.message
    assert sliced.result.metrics["worst_slice"] == "B"
    assert sliced.result.metrics["accuracy"] == 0.5  # the headline is the worst slice's
    rows = {r["value"]: r for r in sliced.result.slices}
    assert (rows["A"]["status"], rows["A"]["n"], rows["A"]["confidence"]) == ("pass", 200, 0.975)
    # A passed in the first round, so B was judged again at the uncorrected level
    assert (rows["B"]["status"], rows["B"]["confidence"]) == ("fail", 0.95)
    assert rows["B"]["threshold"] == {"metric": "accuracy_low", "op": ">=", "value": 0.8}


def test_a_slice_that_clears_the_uncorrected_bound_fails_beside_a_failing_one():
    # 56/60: Wilson lower bound 0.8524 at 95%, 0.8377 at 97.5%; B fails at any level
    ev = _evidence({"A": (56, 60), "B": (10, 40)})
    ev.confidence = 0.95
    params = TOP1.params(min=0.845)
    alone = run_sliced(TOP1, params, ev.subset(ev.metadata["camera"] == "A"), "camera", 1)
    assert alone.status == "pass"
    result = run_sliced(TOP1, params, ev, "camera", 1)
    rows = {r["value"]: r for r in result.slices}
    assert rows["A"]["status"] == "fail" and rows["A"]["confidence"] == 0.975
    assert result.status == "fail" and result.metrics["slices_failed"] == 2


def test_small_slices_are_listed_not_gated_and_none_left_is_an_error():
    ev = _evidence({"A": (60, 60), "B": (1, 5)})
    ev.confidence = 0.95
    result = run_sliced(TOP1, TOP1.params(min=0.5), ev, "camera", 10)
    assert result.status == "pass"
    assert "not gated, under min_size 10: B (5)" in result.message
    rows = {r["value"]: r for r in result.slices}
    assert rows["B"]["status"] == "skip" and rows["B"]["confidence"] is None
    assert rows["A"]["confidence"] == 0.95  # one slice judged: no correction
    none_left = run_sliced(TOP1, TOP1.params(min=0.5), ev, "camera", 100)
    assert (
        none_left.status == "error" and "no slice of camera has min_size 100" in none_left.message
    )


def test_an_unknown_column_is_that_checks_error_naming_the_columns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text(
        "name: t\ndata:\n  eval: d\nchecks:\n"
        "  - {kind: top1_accuracy, min: 0.5, slices: {column: lens}}\n"
        "  - {kind: slice_gap, column: lens, max_gap: 0.1}\n"
    )
    outcomes = run_checks(load_suite("suite.yaml"), _evidence({"A": (5, 5)}))
    for o in outcomes:
        assert o.status == "error"
        assert (
            o.result.message == "slice column 'lens' is not in the eval metadata; columns: camera"
        )


def test_a_slices_key_is_validated_with_the_suite(tmp_path, monkeypatch):
    from qa.suite_errors import SuiteError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text(
        "name: t\ndata:\n  eval: d\nchecks:\n"
        "  - kind: top1_accuracy\n    min: 0.5\n    slices: {column: camera, min_size: 0}\n"
    )
    with pytest.raises(SuiteError, match=r"suite.yaml:7: checks\[0\].slices.min_size"):
        load_suite("suite.yaml")
    (tmp_path / "suite.yaml").write_text(
        "name: t\ndata:\n  eval: d\nchecks:\n  - {kind: label_set, slices: {column: camera}}\n"
    )
    with pytest.raises(SuiteError, match=r"checks\[0\].slices: check kind 'label_set' reads no"):
        load_suite("suite.yaml")


def test_gap_metrics_are_the_whole_minus_the_slice_with_newcombe_bounds():
    m = gap_metrics(15, 30, 30, 30, 0.95)
    assert m["gap"] == pytest.approx(m["accuracy_all"] - m["accuracy_slice"]) == pytest.approx(0.25)
    # Newcombe: the difference rest - slice, from Clopper-Pearson bounds at 95% one-sided
    from qa.metrics.intervals import binomial_bounds

    low_s, _ = binomial_bounds(15, 30, 0.95, "clopper_pearson")
    high_r = binomial_bounds(30, 30, 0.95, "clopper_pearson")[1]
    assert m["gap_high"] == pytest.approx(0.5 * (0.5 + np.hypot(high_r - 1.0, 0.5 - low_s)))
    assert m["gap_low"] < m["gap"] < m["gap_high"]


def test_slice_gap_gates_the_worst_slice_against_the_whole():
    ev = _evidence({"A": (190, 200), "B": (180, 200), "C": (60, 100)})
    ev.confidence = 0.95
    check = REGISTRY["slice_gap"]
    result = check.run(ev, check.params(column="camera", max_gap=0.1))
    assert result.status == "fail" and result.metrics["worst_slice"] == "C"
    assert result.threshold == {"metric": "gap_high", "op": "<=", "value": 0.1}
    assert {r["value"]: r["status"] for r in result.slices} == {
        "A": "pass",
        "B": "pass",
        "C": "fail",
    }
    loose = check.run(ev, check.params(column="camera", max_gap=0.5))
    assert loose.status == "pass" and "all 3 slices of camera pass" in loose.message
    one = check.run(_evidence({"A": (5, 9)}), check.params(column="camera", max_gap=0.5))
    assert one.status == "error" and "no gap to gate" in one.message


def test_every_report_shows_the_slices(tmp_path, monkeypatch):
    from dataclasses import replace

    from helpers import sample_report

    from qa.report import html, json_report, junit, markdown, terminal

    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text(
        "name: t\ndata:\n  eval: d\nchecks:\n"
        "  - {kind: top1_accuracy, name: per camera, min: 0.8, slices: {column: camera}}\n"
    )
    groups = {"A": (200, 200), "B": (20, 40), "C<x>": (90, 100)}
    outcomes = run_checks(load_suite("suite.yaml"), _evidence(groups))
    doc = json_report.to_dict(replace(sample_report(), outcomes=outcomes))
    saved = tmp_path / "result.json"
    saved.write_text(json_report.render(doc))
    doc = json_report.load(saved)  # the document model takes the rows
    rows = doc["checks"][0]["slices"]
    assert [(r["value"], r["status"], r["n"]) for r in rows] == [
        ("A", "pass", 200),
        ("B", "fail", 40),
        ("C<x>", "pass", 100),
    ]
    assert "1 of 3 slices not passed" in terminal.render(doc) and "camera=B" in terminal.render(doc)
    page = html.render(doc)
    assert page.count('class="slice-row"') == 3 and page.count('class="check-row"') == 1
    assert "↳ camera=C&lt;x&gt;" in page  # escaped like every name
    failing = "✗ camera=B (n 40, at 95%): top-1 accuracy lower 95% bound"
    assert failing in junit.render(doc)
    assert "camera=B (n 40, at 95%)" in markdown.render(doc)
    assert "camera=A (n" not in markdown.render(doc)  # passing slices get no line


def test_the_example_suite_gates_the_ink_thirds_of_real_digits(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from helpers import evidence_of, save_tiny, write_data

    from qa.formats import load_any
    from qa.runner import plan

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "slices.yaml").write_text((root / "suites" / "slices.yaml").read_text())
    write_data(tmp_path / "data" / "digits" / "test", per_class=9)  # thirds of 30 images
    candidate = load_any(save_tiny(tmp_path / "cand.pt", seed=1))
    subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "ink_manifest.py"),
            "data/digits/test",
            "data/digits/test-ink.csv",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    suite = load_suite(tmp_path / "suites" / "slices.yaml", check_paths=True)
    evidence = evidence_of(suite, candidate, plan(suite))
    levels, counts = np.unique(evidence.metadata["ink"], return_counts=True)
    assert levels.tolist() == ["heavy", "light", "medium"] and counts.max() - counts.min() <= 1
    for o in run_checks(suite, evidence):
        assert o.status in ("pass", "fail", "warn"), o.result.message  # judged, not an error
        assert [r["value"] for r in o.result.slices] == ["heavy", "light", "medium"]
