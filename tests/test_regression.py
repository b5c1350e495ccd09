"""Regression checks: paired statistics against hand-worked values and constructed models."""

import numpy as np
import pytest

import qa.checks.regression  # noqa: F401  (registers the family)
from qa.checks import REGISTRY
from qa.evidence import BASELINE, CLEAN, Evidence, View
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
    return spec.run(evidence, spec.params(**params))


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
    a = paired.accuracy_delta_bounds(base, cand, 0.95, seed=11)
    assert a == paired.accuracy_delta_bounds(base, cand, 0.95, seed=11)
    # the bound is a quantile of a discrete distribution: other seeds may land on it too
    others = {
        paired.accuracy_delta_bounds(base, cand, 0.95, n_resamples=200, seed=s)[1] for s in range(8)
    }
    assert len(others) > 1
    assert a[0] < (cand.mean() - base.mean()) < a[1]


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
        assert 0 < mde < 1 or (kind == "per_class_regression" and mde == np.inf), kind
    # some classes of 60 images cannot show any recall drop with 80% power: the MDE says so
    rows = _run("per_class_regression", ev).details["classes"]
    assert any(r["mde"] == np.inf for r in rows)


def test_minimum_detectable_effect_is_infinite_where_no_drop_could_be_shown():
    # the largest possible drop is the discordance itself (every discordant pair against)
    assert paired.minimum_detectable_effect(100, 0.05, 0.95) == np.inf
    d = paired.minimum_detectable_effect(10_000, 0.05, 0.95)
    assert 0 < d <= 0.05


def _paired_class(n: int, worse: int, better: int):
    """Labels of one class, baseline right everywhere but `better`, candidate wrong on `worse`."""
    labels = np.zeros(n, dtype=int)
    base, cand = labels.copy(), labels.copy()
    cand[:worse] = 1
    base[worse : worse + better] = 1
    return labels, base, cand


def test_a_class_dropping_by_about_the_tolerance_is_not_flagged():
    # 110 of 2,000 lost: a drop of 0.055 against a tolerance of 0.05 is within noise (it was
    # flagged when the point estimate was compared instead of a bound)
    ev = _evidence(*_paired_class(2000, 110, 0))
    result = _run("per_class_regression", ev, tolerance=0.05, classes=["0"])
    assert result.status == "pass", result.message
    assert 0.05 < result.details["classes"][0]["p_value"] < 0.5
    clear = _run("per_class_regression", _evidence(*_paired_class(2000, 200, 0)), tolerance=0.05)
    assert clear.status == "fail" and "0 (1.000 -> 0.900" in clear.message


def test_tango_score_test_reduces_to_mcnemar_and_matches_a_hand_value():
    from scipy.stats import norm

    # margin 0 is McNemar's exact test
    assert paired.drop_pvalue(7, 1, 100) == paired.mcnemar_exact(7, 1)
    # by hand: n=100, b=10, c=2, margin 0.05: 2n q^2 + (-12 + 192 * 0.05) q - 2 * 0.05 * 0.95 = 0
    a, b, c = 200, -12 + 192 * 0.05, -2 * 0.05 * 0.95
    q = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
    z = (10 - 2 - 5 - 1) / np.sqrt(100 * (2 * q + 0.05 * 0.95))  # continuity-corrected
    assert paired.drop_pvalue(10, 2, 100, 0.05) == pytest.approx(norm.sf(z), rel=1e-12)


def test_mcnemar_never_fails_a_better_candidate(labels):
    base = _with_errors(labels, 0.2, 3)
    ev = _evidence(labels, base, labels)  # the candidate is right everywhere
    for alternative in ("less", "two-sided"):
        result = _run("mcnemar", ev, alternative=alternative)
        assert result.status == "pass", (alternative, result.message)
    worse = _run("mcnemar", _evidence(labels, labels, base), alternative="two-sided")
    assert worse.status == "fail"


def calibrated_logits(rng, labels: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """A model right with exactly its stated top-label confidence: calibrated by construction."""
    n, k = len(labels), len(CLASSES)
    correct = rng.random(n) < confidence
    pred = np.where(correct, labels, (labels + rng.integers(1, k, n)) % k)
    logits = np.zeros((n, k), dtype=np.float32)
    logits[np.arange(n), pred] = np.log(confidence * (k - 1) / (1 - confidence))
    return logits


def _calibrated_pair(n: int, seed: int, scale: float = 1.0) -> Evidence:
    """Both models calibrated; the candidate much less confident (logits x `scale`)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    hesitant = calibrated_logits(rng, labels, rng.uniform(0.3, 0.99, n))
    confident = calibrated_logits(rng, labels, 1 - 0.3 * rng.beta(0.3, 3, n).clip(1e-3))
    return Evidence(
        class_names=CLASSES,
        labels=labels,
        sample_ids=[f"s{i}" for i in range(n)],
        arrays={CLEAN: scale * hesitant, BASELINE: confident},
    )


def test_calibration_regression_does_not_fail_a_calibrated_but_less_confident_candidate():
    # the plug-in ECE of the less confident model is larger by bias alone: this failed every seed
    for seed in range(5):
        result = _run("calibration_regression", _calibrated_pair(2000, seed))
        assert result.status == "pass", result.message
        assert result.metrics["increase_lower"] < 0


def test_calibration_regression_fails_a_clearly_miscalibrated_candidate():
    result = _run("calibration_regression", _calibrated_pair(2000, 0, scale=3.0), max_increase=0.02)
    assert result.status == "fail"
    assert result.metrics["increase_lower"] > 0.02


def test_robustness_regression_flags_the_family_that_broke(labels):
    base = _with_errors(labels, 0.05, 10)
    ev = _evidence(labels, base, base)
    for s in (1, 2):
        for model in ("candidate", "baseline"):
            ev.arrays[View(model=model, perturbation="defocus_blur", severity=s)] = _logits(base)
            noisy = _with_errors(labels, 0.4, s) if model == "candidate" else base
            ev.arrays[View(model=model, perturbation="gaussian_noise", severity=s)] = _logits(noisy)
    names = ["defocus_blur", "gaussian_noise"]
    result = _run("robustness_regression", ev, perturbations=names, severities=[1, 2])
    assert result.status == "fail"
    regressed = [r["perturbation"] for r in result.details["families"] if r["regressed"]]
    assert regressed == ["gaussian_noise"]


def test_robustness_regression_validates_perturbations_as_corruption_checks_do():
    params = REGISTRY["robustness_regression"].params
    with pytest.raises(ValueError, match="unknown perturbation 'gausian_noise'"):
        params(perturbations=["gausian_noise"])
    with pytest.raises(ValueError, match="lists a value twice"):
        params(perturbations=["contrast", "contrast"])
    with pytest.raises(ValueError, match="less than or equal to 5"):
        params(perturbations=["contrast"], severities=[6])


def test_robustness_regression_never_passes_on_non_finite_corrupted_logits(labels):
    base = _with_errors(labels, 0.05, 10)
    ev = _evidence(labels, base, base)
    for model in ("candidate", "baseline"):
        ev.arrays[View(model=model, perturbation="gaussian_noise", severity=1)] = _logits(base)
    broken = View(model="baseline", perturbation="gaussian_noise", severity=1)
    ev.arrays[broken][:3, 0] = np.nan  # argmax would silently call them class 0
    result = _run("robustness_regression", ev, perturbations=["gaussian_noise"], severities=[1])
    assert (result.status, result.message) == (
        "error",
        "3 of 300 samples have NaN or infinite logits in logits of baseline on eval "
        "(gaussian_noise s1)",
    )


def test_a_missing_or_non_finite_baseline_stops_every_paired_check(labels):
    ev = _evidence(labels, labels, labels)
    ev.arrays[BASELINE][7, 1] = np.inf
    for kind in ("accuracy_regression", "mcnemar", "per_class_regression"):
        assert _run(kind, ev).message == (
            "1 of 300 samples have NaN or infinite logits in logits of baseline on eval (clean)"
        )
    del ev.arrays[BASELINE]
    result = _run("negative_flip_rate", ev, max=0.1)
    assert (result.status, result.message) == (
        "error",
        "no baseline logits: give `baseline:` in the suite or --baseline",
    )
