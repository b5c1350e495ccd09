"""Regression checks: paired statistics against hand-worked values and constructed models."""

import numpy as np
import pytest

import qa.checks.regression  # noqa: F401  (registers the family)
from qa.checks import REGISTRY
from qa.checks.regression import BASELINE
from qa.evidence import CLEAN, Evidence, View
from qa.metrics import paired

CLASSES = [str(i) for i in range(5)]


def _logits(pred: np.ndarray, k: int = 5) -> np.ndarray:
    return (np.eye(k)[pred] * 4.0).astype(np.float32)


def _evidence(labels, base_pred, cand_pred) -> Evidence:
    labels = np.asarray(labels)
    return Evidence(
        class_names=CLASSES,
        labels=labels,
        sample_ids=[f"img-{i}.png" for i in range(len(labels))],
        arrays={CLEAN: _logits(np.asarray(cand_pred)), BASELINE: _logits(np.asarray(base_pred))},
    )


def _run(kind, evidence, **params):
    spec = REGISTRY[kind]
    return spec.fn(evidence, spec.params(**params))


@pytest.fixture
def labels():
    return np.repeat(np.arange(5), 60)  # 300 samples, 60 per class


def _with_errors(labels, rate, seed):
    """Predictions that are wrong on a random `rate` fraction of samples."""
    rng = np.random.default_rng(seed)
    pred = labels.copy()
    wrong = rng.random(len(labels)) < rate
    pred[wrong] = (labels[wrong] + 1) % 5
    return pred


def test_identical_models_pass_every_regression_check_with_zero_flips(labels):
    pred = _with_errors(labels, 0.05, 0)
    ev = _evidence(labels, pred, pred)
    for kind in ("accuracy_regression", "mcnemar", "per_class_regression"):
        assert _run(kind, ev).status == "pass", kind
    flips = _run("negative_flip_rate", ev, max=0.05)
    assert flips.status == "pass"
    assert flips.metrics["negative_flips"] == 0 and flips.details["flips"] == []
    assert _run("accuracy_regression", ev).metrics["delta_upper"] == 0.0


def test_candidate_worse_on_one_class_fails_and_names_it(labels):
    base = _with_errors(labels, 0.03, 1)
    cand = base.copy()
    cand[labels == 3] = 4  # class 3 collapses
    result = _run("per_class_regression", _evidence(labels, base, cand))
    assert result.status == "fail"
    assert result.message.startswith("recall regressed for 3 (")
    assert [r["class"] for r in result.details["classes"] if r["regressed"]] == ["3"]


def test_better_overall_but_many_flips_fails_the_flip_gate(labels):
    rng = np.random.default_rng(2)
    base = _with_errors(labels, 0.20, 3)
    cand = labels.copy()
    # the candidate is right where the baseline was wrong, but breaks 30 samples it had right
    broken = rng.choice(np.flatnonzero(base == labels), 30, replace=False)
    cand[broken] = (labels[broken] + 2) % 5
    ev = _evidence(labels, base, cand)
    assert (cand == labels).mean() > (base == labels).mean()
    assert _run("accuracy_regression", ev).status == "pass"
    flips = _run("negative_flip_rate", ev, max=0.05)
    assert flips.status == "fail"
    assert flips.metrics["negative_flips"] == 30 and len(flips.details["flips"]) == 30
    first = flips.details["flips"][0]
    assert first["baseline"] == first["label"] != first["candidate"]


def test_mcnemar_exact_p_value_by_hand():
    # 8 baseline-only vs 2 candidate-only: P(X >= 8 | n=10, p=.5) = (45 + 10 + 1) / 1024
    assert paired.mcnemar_exact(8, 2, "less") == pytest.approx(56 / 1024)
    assert paired.mcnemar_exact(8, 2, "two-sided") == pytest.approx(112 / 1024)
    assert paired.mcnemar_exact(0, 0) == 1.0


def test_mcnemar_check_fails_a_clearly_worse_candidate(labels):
    base = _with_errors(labels, 0.02, 4)
    cand = _with_errors(labels, 0.15, 5)
    result = _run("mcnemar", _evidence(labels, base, cand))
    assert result.status == "fail"
    assert result.metrics["baseline_only_correct"] > result.metrics["candidate_only_correct"]


def test_holm_adjustment_by_hand():
    assert paired.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_bootstrap_bound_is_reproducible_under_the_seed(labels):
    base = _with_errors(labels, 0.05, 6) == labels
    cand = _with_errors(labels, 0.07, 7) == labels
    a = paired.accuracy_delta_upper(base, cand, 0.95, seed=11)
    assert a == paired.accuracy_delta_upper(base, cand, 0.95, seed=11)
    # the bound is a quantile of a discrete distribution: other seeds may land on it too
    others = {
        paired.accuracy_delta_upper(base, cand, 0.95, n_resamples=200, seed=s) for s in range(8)
    }
    assert len(others) > 1
    assert (cand.mean() - base.mean()) < a


def test_minimum_detectable_effect_solves_connors_relation():
    n, psi = 270, 0.05
    d = paired.minimum_detectable_effect(n, psi, 0.95, 0.8)
    za, zb = 1.6448536, 0.8416212
    assert (za * np.sqrt(psi) + zb * np.sqrt(psi - d * d)) ** 2 / d**2 == pytest.approx(n)
    assert paired.minimum_detectable_effect(n, psi, 0.95) > paired.minimum_detectable_effect(
        4 * n, psi, 0.95
    )


def test_every_result_states_its_minimum_detectable_effect(labels):
    pred = _with_errors(labels, 0.05, 8)
    ev = _evidence(labels, pred, _with_errors(labels, 0.06, 9))
    for kind in (
        "accuracy_regression",
        "mcnemar",
        "per_class_regression",
        "calibration_regression",
    ):
        mde = _run(kind, ev).metrics["mde"]
        assert 0 < mde < 1, kind


def test_missing_baseline_is_an_error_never_a_pass(labels):
    ev = _evidence(labels, labels, labels)
    del ev.arrays[BASELINE]
    result = _run("accuracy_regression", ev)
    assert result.status == "error" and "baseline" in result.message


def test_robustness_regression_flags_the_family_that_broke(labels):
    base = _with_errors(labels, 0.05, 10)
    ev = _evidence(labels, base, base)
    for s in (1, 2):
        for model in ("candidate", "baseline"):
            ev.arrays[View(model=model, perturbation="blur", severity=s)] = _logits(base)
            noisy = _with_errors(labels, 0.4, s) if model == "candidate" else base
            ev.arrays[View(model=model, perturbation="noise", severity=s)] = _logits(noisy)
    result = _run("robustness_regression", ev, perturbations=["blur", "noise"], severities=[1, 2])
    assert result.status == "fail"
    assert [r["perturbation"] for r in result.details["families"] if r["regressed"]] == ["noise"]
