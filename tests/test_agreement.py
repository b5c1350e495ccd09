"""prediction_agreement: the exact count of samples predicted differently from the baseline."""

import numpy as np
import pytest

from qa.checks import load_all
from qa.evidence import BASELINE, CLEAN, Evidence

CHECK = load_all()["prediction_agreement"]


def _run(candidate, baseline, facts=None, **params):
    labels = np.array([0, 1, 2, 0])
    evidence = Evidence(
        ["a", "b", "c"],
        labels,
        ["s0", "s1", "s2", "s3"],
        {CLEAN: np.asarray(candidate, np.float32), BASELINE: np.asarray(baseline, np.float32)},
        model_facts=facts or {},
    )
    return CHECK.run(evidence, CHECK.params(**params))


BASE = [[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 0.0]]


def test_identical_predictions_pass_with_nothing_listed():
    result = _run(BASE, BASE)
    assert result.status == "pass"
    assert result.metrics["flips"] == 0 and result.metrics["max_logit_diff"] == 0
    assert result.details == {"flips": []}
    assert "exact over 4 eval samples" in result.message


def test_one_changed_prediction_fails_at_zero_and_is_listed():
    changed = [row[:] for row in BASE]
    changed[1] = [0.0, 1.0, 2.0]  # b -> c on sample s1
    result = _run(changed, BASE)
    assert (result.status, result.metrics["flips"]) == ("fail", 1)
    assert result.details["flips"] == [
        {"id": "s1", "label": "b", "baseline": "b", "candidate": "c"}
    ]
    assert result.metrics["candidate"] == 0.5 and result.metrics["baseline"] == 0.75
    assert _run(changed, BASE, max_flips=1).status == "pass"


def test_a_logit_change_within_the_same_predictions_is_gated_when_asked():
    nudged = np.array(BASE) + 1e-3
    assert _run(nudged, BASE).status == "pass"  # same predictions; the change is reported
    result = _run(nudged, BASE, max_logit_diff=1e-4)
    assert result.status == "fail" and result.threshold["metric"] == "max_logit_diff"
    assert result.metrics["max_logit_diff"] == pytest.approx(1e-3, rel=1e-3)
    assert _run(nudged, BASE, max_logit_diff=1e-2).status == "pass"


def test_non_finite_logits_are_an_error_not_a_pass():
    broken = np.array(BASE)
    broken[0, 0] = np.nan
    assert _run(broken, BASE).status == "error"


def test_a_baseline_that_is_the_candidates_own_file_is_an_error_not_a_pass():
    same = {"candidate": {"sha256": "ab" * 32}, "baseline": {"sha256": "ab" * 32}}
    result = _run(BASE, BASE, same)
    assert result.status == "error" and "own file" in result.message


def test_an_export_says_whether_the_baseline_is_its_source():
    def facts(baseline_sha):
        export = {"sha256": "cd" * 32, "provenance": {"source_sha256": "ab" * 32}}
        return {"candidate": export, "baseline": {"sha256": baseline_sha}}

    assert _run(BASE, BASE, facts("ab" * 32)).metrics["baseline_is_source"] is True
    assert _run(BASE, BASE, facts("ef" * 32)).metrics["baseline_is_source"] is False
    assert "baseline_is_source" not in _run(BASE, BASE).metrics
