"""Robustness metrics against hand-worked values, the checks on made-up evidence and the params
schema (the attacks themselves: tests/test_adversarial.py)."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

import qa.perturb
from qa.adversarial import Attack, parse_attack
from qa.checks import REGISTRY, load_all
from qa.checks.robustness import (
    AdversarialAccuracyParams,
    CorruptionAccuracyParams,
    MeanCorruptionErrorParams,
    PredictionConsistencyParams,
)
from qa.evidence import CLEAN, Evidence, View
from qa.metrics import robustness as rob
from qa.metrics.bootstrap import bootstrap_bounds
from qa.metrics.intervals import binomial_bounds
from qa.runner import run_checks
from qa.suite import load_suite

load_all()


def test_mce_and_relative_mce_match_a_hand_worked_example():
    errors = {"f1": [0.2, 0.4], "f2": [0.3, 0.5]}
    reference = {"f1": [0.4, 0.6], "f2": [0.3, 0.3]}
    out = rob.mean_corruption_error(errors, 0.1, reference, 0.2)
    # CE: 0.6 / 1.0 and 0.8 / 0.6; relative: (0.1 + 0.3) / (0.2 + 0.4) and (0.2 + 0.4) / (0.1 + 0.1)
    assert out["ce"] == pytest.approx({"f1": 0.6, "f2": 4 / 3})
    assert out["mce"] == pytest.approx((0.6 + 4 / 3) / 2)
    assert out["relative_ce"] == pytest.approx({"f1": 2 / 3, "f2": 3.0})
    assert out["relative_mce"] == pytest.approx((2 / 3 + 3.0) / 2)


def test_clean_reference_and_undefined_quotients():
    errors = {"f": [0.2, 0.3]}
    out = rob.mean_corruption_error(errors, 0.1, {"f": [0.1, 0.1]}, 0.0)
    assert out["mce"] == pytest.approx(2.5)  # mean error 0.25 over clean error 0.1
    assert out["relative_mce"] == pytest.approx(1.5)  # (0.1 + 0.2) / (0.1 + 0.1)
    flat = rob.mean_corruption_error(errors, 0.1, {"f": [0.2, 0.2]}, 0.2)
    assert np.isnan(flat["relative_mce"])  # the reference loses nothing: no ratio
    with pytest.raises(ValueError, match="equal length"):
        rob.corruption_error([0.1], [0.1, 0.2])


def test_error_and_flip_rates():
    logits = np.eye(3)[[0, 1, 2, 2]]
    assert rob.error_rate(logits, np.array([0, 1, 2, 0])) == 0.25
    assert rob.flip_rate(logits, np.eye(3)[[0, 1, 1, 1]]) == 0.5


def _evidence(labels, predictions: dict[View, list[int]]) -> Evidence:
    """Evidence whose views predict the given classes (one-hot logits)."""
    labels = np.asarray(labels)
    arrays = {v: np.eye(3, dtype=np.float32)[p] * 5 for v, p in predictions.items()}
    return Evidence(["a", "b", "c"], labels, [f"s{i}" for i in range(len(labels))], arrays)


LABELS = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


def _wrong(k: int) -> list[int]:
    """Predictions with the first k of LABELS wrong."""
    return [(y + 1) % 3 if i < k else y for i, y in enumerate(LABELS)]


def noise(s: int, model: str = "candidate") -> View:
    return View(model=model, perturbation="gaussian_noise", severity=s)


def test_corruption_accuracy_gates_the_worst_view_and_the_drop():
    ev = _evidence(LABELS, {CLEAN: _wrong(0), noise(1): _wrong(2), noise(2): _wrong(4)})
    p = CorruptionAccuracyParams(
        perturbations=["gaussian_noise"], severities=[1, 2], min=0.7, gate_on="point"
    )
    result = REGISTRY["corruption_accuracy"].run(ev, p)
    assert result.status == "fail" and "gaussian_noise s2" in result.message
    assert result.metrics["worst_accuracy"] == pytest.approx(0.6)
    assert result.details["curves"] == {
        "gaussian_noise": [{"severity": 1, "accuracy": 0.8}, {"severity": 2, "accuracy": 0.6}]
    }
    p = p.model_copy(update={"min": None, "max_relative_drop": 0.5})
    result = REGISTRY["corruption_accuracy"].run(ev, p)
    assert result.status == "pass" and result.metrics["worst_relative_drop"] == pytest.approx(0.4)
    both = p.model_copy(update={"min": 0.7})
    assert REGISTRY["corruption_accuracy"].run(ev, both).threshold["metric"] == "worst_accuracy"
    bound = both.model_copy(update={"gate_on": "bound"})
    assert (
        REGISTRY["corruption_accuracy"].run(ev, bound).threshold["metric"] == "worst_accuracy_low"
    )


def test_mce_uses_the_baseline_when_there_is_one_and_says_so():
    views = {CLEAN: _wrong(1), noise(1): _wrong(2), noise(2): _wrong(4)}
    p = MeanCorruptionErrorParams(
        perturbations=["gaussian_noise"], severities=[1, 2], max=1.0, gate_on="point"
    )
    assert View(model="baseline") in p.views()
    clean_only = REGISTRY["mean_corruption_error"].run(_evidence(LABELS, views), p)
    assert clean_only.metrics["mce"] == pytest.approx(3.0)  # (0.2 + 0.4) / 2 / 0.1
    assert "clean error (no baseline)" in clean_only.message and clean_only.status == "fail"
    base = {View(model="baseline"): _wrong(2), noise(1, "baseline"): _wrong(4)}
    base[noise(2, "baseline")] = _wrong(8)
    with_base = REGISTRY["mean_corruption_error"].run(_evidence(LABELS, views | base), p)
    assert with_base.metrics["mce"] == pytest.approx(0.5)  # 0.6 / 1.2
    assert with_base.metrics["relative_mce"] == pytest.approx(0.5)  # (0.1 + 0.3) / (0.2 + 0.6)
    assert with_base.status == "pass" and "baseline's errors" in with_base.message
    curve = with_base.details["curves"]["gaussian_noise"][1]
    assert curve == {"severity": 2, "accuracy": 0.6, "baseline_accuracy": pytest.approx(0.2)}
    strict = p.model_copy(update={"reference": "baseline"})
    assert REGISTRY["mean_corruption_error"].run(_evidence(LABELS, views), strict).status == "error"
    clean = p.model_copy(update={"reference": "clean"})
    assert View(model="baseline") not in clean.views()


def test_prediction_consistency_gates_the_worst_flip_rate():
    ev = _evidence(LABELS, {CLEAN: _wrong(1), noise(1): _wrong(0), noise(2): _wrong(3)})
    p = PredictionConsistencyParams(perturbations=["gaussian_noise"], severities=[1, 2], max=0.15)
    result = REGISTRY["prediction_consistency"].run(ev, p)
    assert result.metrics["worst_flip_rate"] == pytest.approx(0.2)
    assert result.status == "fail" and "gaussian_noise s2" in result.message


def test_adversarial_accuracy_reads_one_view_per_attack():
    p = AdversarialAccuracyParams(eps=0.03, steps=5, min=0.5)
    clean, fgsm, pgd = p.views()
    assert (fgsm.kind, fgsm.perturbation) == ("adversarial", "fgsm:eps=0.03,space=pixel")
    assert parse_attack(pgd.perturbation) == Attack("pgd", 0.03, 5, 2.5 * 0.03 / 5, "pixel")
    missing = REGISTRY["adversarial_accuracy"].run(_evidence(LABELS, {CLEAN: LABELS}), p)
    assert missing.status == "error" and "pgd:eps=0.03" in missing.message
    ev = _evidence(LABELS, {clean: LABELS, fgsm: _wrong(3), pgd: _wrong(6)})
    result = REGISTRY["adversarial_accuracy"].run(ev, p)
    assert result.metrics["pgd_accuracy"] == pytest.approx(0.4) and result.status == "fail"
    assert "PGD" in result.message


N = 400
BIG = np.arange(N) % 3


def _big(wrong: list[int] | range, predictions=None) -> np.ndarray:
    """Predictions for BIG (or `predictions`) that differ from it at the given samples."""
    out = np.array(BIG if predictions is None else predictions)
    out[list(wrong)] = (out[list(wrong)] + 1) % 3
    return out


def test_corruption_accuracy_gates_every_views_lower_bound_at_the_suite_confidence():
    # clean perfect; s1 wrong on 10 of 400, s2 on 32: accuracy 0.92 clears 0.9, its bound does not
    ev = _evidence(BIG, {CLEAN: BIG, noise(1): _big(range(10)), noise(2): _big(range(32))})
    p = CorruptionAccuracyParams(perturbations=["gaussian_noise"], severities=[1, 2], min=0.9)
    result = REGISTRY["corruption_accuracy"].run(ev, p)
    low = binomial_bounds(368, N, 0.95, "wilson")[0]
    assert result.status == "fail" and result.threshold["metric"] == "worst_accuracy_low"
    assert result.metrics["worst_accuracy_low"] == pytest.approx(low) and low < 0.9
    assert result.message == (
        f"worst accuracy (gaussian_noise s2) lower 95% bound {low:.4f} misses >= 0.9; "
        "point estimate 0.9200 (368/400)"
    )
    assert result.details["views"][1]["accuracy_high"] > 0.92
    point = p.model_copy(update={"gate_on": "point"})
    assert REGISTRY["corruption_accuracy"].run(ev, point).status == "pass"
    exact = replace(ev, interval_method="clopper_pearson", confidence=0.9)
    result = REGISTRY["corruption_accuracy"].run(exact, p)
    assert (
        result.metrics["worst_accuracy_low"] == binomial_bounds(368, N, 0.9, "clopper_pearson")[0]
    )
    assert result.metrics["interval"] == "clopper_pearson" and "lower 90% bound" in result.message


def _slow_bound(statistic, n: int, resamples: int, seed: int) -> tuple[float, float]:
    """The percentile bootstrap of `statistic(indices)`, one resample of samples at a time."""
    return bootstrap_bounds(statistic, (np.arange(n),), 0.95, n_resamples=resamples, seed=seed)


def test_relative_drop_gates_the_upper_bound_of_its_paired_score_interval():
    # clean wrong on samples 0..19 (0.95), s1 on 15..64 (0.875): 5 clean errors fixed, 45 clean
    # hits lost, a drop of 0.075 / 0.95 = 0.0789 that clears 0.1; its upper bound does not
    ev = _evidence(BIG, {CLEAN: _big(range(20)), noise(1): _big(range(15, 65))})
    p = CorruptionAccuracyParams(
        perturbations=["gaussian_noise"], severities=[1], max_relative_drop=0.1
    )
    result = REGISTRY["corruption_accuracy"].run(ev, p)
    clean_ok, s1_ok = np.arange(N) >= 20, ~((np.arange(N) >= 15) & (np.arange(N) < 65))
    low, high = rob.relative_drop_bounds(clean_ok, s1_ok, 0.95)
    assert result.metrics["worst_relative_drop"] == pytest.approx(0.075 / 0.95)
    assert low < 0.075 / 0.95 < 0.1 < high
    assert result.status == "fail" and result.threshold["metric"] == "worst_relative_drop_high"
    assert result.metrics["worst_relative_drop_high"] == high
    assert f"upper 95% bound {high:.4f} misses <= 0.1; point estimate 0.0789" in result.message
    point = p.model_copy(update={"gate_on": "point"})
    assert REGISTRY["corruption_accuracy"].run(ev, point).status == "pass"


def _score_by_brute_force(both, only_corrupted, only_clean, neither, ratio):
    """The score statistic of H0: corrupted / clean accuracy = ratio, its restricted maximum
    likelihood estimate found numerically (the multinomial of the four paired outcomes)."""
    from scipy.optimize import minimize

    x = np.array([both, only_corrupted, only_clean, neither], dtype=float)
    n = x.sum()

    def cells(v):  # (both, only clean) free; H0 fixes only corrupted; the rest is neither
        p_both, p_clean = v
        p_corr = ratio * (p_both + p_clean) - p_both
        return np.array([p_both, p_corr, p_clean, 1 - p_both - p_corr - p_clean])

    def nll(v):
        p = cells(v)
        return np.inf if (p <= 0).any() else -(x * np.log(p)).sum()

    grid = [(a, b) for a in np.linspace(0.01, 0.99, 99) for b in np.linspace(0.001, 0.5, 200)]
    start = min(grid, key=nll)  # the best feasible point of a grid, then polished
    fit = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-12})
    p = cells(fit.x)
    weights = np.array([1 - ratio, 1, -ratio, 0])  # corrupted - ratio * clean, per cell
    return (x @ weights) / np.sqrt(n * (p @ weights**2))


@pytest.mark.parametrize("counts", [(300, 8, 40, 52), (150, 30, 60, 30), (500, 0, 12, 3)])
def test_relative_drop_bounds_are_where_the_paired_score_test_turns(counts):
    both, only_corrupted, only_clean, _ = counts
    clean = np.repeat([1, 0, 1, 0], counts).astype(bool)
    corrupted = np.repeat([1, 1, 0, 0], counts).astype(bool)
    low, high = rob.relative_drop_bounds(clean, corrupted, 0.95)
    drop = 1 - (both + only_corrupted) / (both + only_clean)
    assert low < drop < high
    z = 1.6448536269514722
    assert _score_by_brute_force(*counts, 1 - high) == pytest.approx(z, abs=1e-4)
    assert _score_by_brute_force(*counts, 1 - low) == pytest.approx(-z, abs=1e-4)


def test_relative_drop_without_a_discordant_sample_is_bounded_like_wilson():
    # no sample changes: the drop is 0, its upper bound z^2 / (hits + z^2), Wilson's at 0 of hits
    same = np.arange(100) >= 10
    _, high = rob.relative_drop_bounds(same, same, 0.95)
    assert high == pytest.approx(1.6448536269514722**2 / (90 + 1.6448536269514722**2))
    assert rob.relative_drop_bounds(~same & same, same, 0.95) == pytest.approx(
        (np.nan,) * 2, nan_ok=True
    )


def test_prediction_consistency_gates_the_flip_rates_upper_bound():
    ev = _evidence(BIG, {CLEAN: BIG, noise(1): _big(range(36)), noise(2): _big(range(4))})
    p = PredictionConsistencyParams(perturbations=["gaussian_noise"], severities=[1, 2], max=0.1)
    result = REGISTRY["prediction_consistency"].run(ev, p)
    high = binomial_bounds(36, N, 0.95)[1]
    assert result.status == "fail" and result.metrics["worst_flip_rate_high"] == pytest.approx(high)
    assert result.message == (
        f"worst flip rate (gaussian_noise s1) upper 95% bound {high:.4f} misses <= 0.1; "
        "point estimate 0.0900 (36/400)"
    )
    point = p.model_copy(update={"gate_on": "point"})
    assert REGISTRY["prediction_consistency"].run(ev, point).status == "pass"


def test_adversarial_accuracy_gates_the_worst_attacks_lower_bound():
    p = AdversarialAccuracyParams(min=0.5)
    clean, fgsm, pgd = p.views()
    ev = _evidence(BIG, {clean: BIG, fgsm: _big(range(150)), pgd: _big(range(190))})
    result = REGISTRY["adversarial_accuracy"].run(ev, p)
    low = binomial_bounds(210, N, 0.95)[0]
    assert result.status == "fail" and result.metrics["worst_accuracy_low"] == pytest.approx(low)
    assert result.metrics["pgd_accuracy"] == 0.525 and "PGD" in result.message
    assert result.message.endswith("point estimate 0.5250 (210/400)")
    point = p.model_copy(update={"gate_on": "point"})
    assert REGISTRY["adversarial_accuracy"].run(ev, point).status == "pass"


def test_mce_against_the_clean_error_bootstraps_the_clean_error_too():
    # clean wrong on 40 of 400; noise s1 on 60, s2 on 90: mCE (0.15 + 0.225) / 2 / 0.1 = 1.875
    views = {CLEAN: _big(range(40)), noise(1): _big(range(60)), noise(2): _big(range(90))}
    ev = _evidence(BIG, views)
    p = MeanCorruptionErrorParams(
        perturbations=["gaussian_noise"], severities=[1, 2], max=2.0, resamples=300, seed=4
    )
    result = REGISTRY["mean_corruption_error"].run(ev, p)
    assert result.metrics["mce"] == pytest.approx(1.875)
    errors = np.arange(N)[None, :] < np.array([[40], [60], [90]])  # clean, s1, s2

    def mce(i):
        clean, s1, s2 = errors[:, i].mean(axis=1)
        return rob.mean_corruption_error({"f": [s1, s2]}, clean, {"f": [clean, clean]}, 0)["mce"]

    slow = _slow_bound(mce, N, 300, 4)
    assert result.metrics["mce_high"] == pytest.approx(slow[1]) and slow[1] > 2.0
    assert result.metrics["mce_low"] == pytest.approx(slow[0])
    assert result.status == "fail" and result.threshold["metric"] == "mce_high"
    assert (
        REGISTRY["mean_corruption_error"].run(ev, p.model_copy(update={"gate_on": "point"})).status
        == "pass"
    )


def test_relative_mce_against_a_baseline_resamples_both_models_together():
    views = {CLEAN: _big(range(20)), noise(1): _big(range(60)), noise(2): _big(range(100))}
    views |= {
        View(model="baseline"): _big(range(200, 240)),
        noise(1, "baseline"): _big(range(200, 300)),
        noise(2, "baseline"): _big(range(150, 300)),
    }
    p = MeanCorruptionErrorParams(
        perturbations=["gaussian_noise"],
        severities=[1, 2],
        metric="relative_mce",
        max=1.0,
        resamples=200,
    )
    result = REGISTRY["mean_corruption_error"].run(_evidence(BIG, views), p)
    # (0.15 + 0.25 - 2 * 0.05) / (0.25 + 0.375 - 2 * 0.1)
    assert result.metrics["relative_mce"] == pytest.approx(0.3 / 0.425)
    wrong = {v: np.asarray(pred) != BIG for v, pred in views.items()}

    def relative(i):
        e = {v: w[i].mean() for v, w in wrong.items()}
        cand, base = [e[noise(1)], e[noise(2)]], [e[noise(1, "baseline")], e[noise(2, "baseline")]]
        out = rob.mean_corruption_error(
            {"f": cand}, e[CLEAN], {"f": base}, e[View(model="baseline")]
        )
        return out["relative_mce"]

    slow = _slow_bound(relative, N, 200, 0)
    assert result.metrics["relative_mce_high"] == pytest.approx(slow[1])
    assert result.status == ("pass" if slow[1] <= 1.0 else "fail")


def test_gate_on_has_one_vocabulary_the_side_implied_by_the_gate():
    for params in (
        PredictionConsistencyParams,
        AdversarialAccuracyParams,
        MeanCorruptionErrorParams,
        CorruptionAccuracyParams,
    ):
        assert params.model_validate(params.example).gate_on == "bound"
        for word in ("lower_bound", "upper_bound"):
            with pytest.raises(ValidationError, match="'bound' or 'point'"):
                params.model_validate({**params.example, "gate_on": word})


@pytest.mark.parametrize("kind", ["corruption_accuracy", "prediction_consistency"])
def test_non_finite_corrupted_logits_are_an_error_result_not_a_crash(kind, tmp_path, monkeypatch):
    ev = _evidence(LABELS, {CLEAN: _wrong(0), noise(1): _wrong(2)})
    ev.arrays[noise(1)][[2, 5], 0] = [np.nan, np.inf]
    monkeypatch.chdir(tmp_path)
    entry = f"  - {{kind: {kind}, perturbations: [gaussian_noise], severities: [1], min: 0.1}}"
    entry = entry.replace("min:", "max:") if kind == "prediction_consistency" else entry
    (tmp_path / "suite.yaml").write_text(f"name: t\ndata:\n  eval: d\nchecks:\n{entry}\n")
    (outcome,) = run_checks(load_suite("suite.yaml"), ev)
    assert (outcome.status, outcome.result.message) == (
        "error",
        "2 of 10 samples have NaN or infinite logits in logits of candidate on eval "
        "(gaussian_noise s1)",
    )
    assert "traceback" not in outcome.result.details


def test_every_boundary_scenario_runs_the_registered_check():
    path = Path(__file__).parents[1] / "bench" / "boundary_robustness.py"
    spec = importlib.util.spec_from_file_location("boundary_robustness", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for scenario in bench.SCENARIOS:
        out = scenario(n=60, reps=2, seed=0)
        assert out["n"] == 60 and out["reps"] == 2 and out["what"].endswith("on the boundary")
        assert out["kind"] in REGISTRY and out["rate"] == out["wrong"] / 2


def test_params_reject_unknown_names_bad_severities_and_no_gate():
    known = r"unknown perturbation 'gausian_noise'.*known perturbations: brightness, contrast, "
    with pytest.raises(ValidationError, match=known):
        CorruptionAccuracyParams(perturbations=["gausian_noise"], min=0.5)
    with pytest.raises(ValidationError, match="less than or equal to 5"):
        CorruptionAccuracyParams(perturbations=["fog"], severities=[1, 6], min=0.5)
    with pytest.raises(ValidationError, match="lists a value twice"):
        CorruptionAccuracyParams(perturbations=["fog", "fog"], min=0.5)
    with pytest.raises(ValidationError, match="give `min`, `max_relative_drop` or both"):
        CorruptionAccuracyParams(perturbations=["fog"])
    with pytest.raises(ValueError, match="Expected 'method:eps="):
        parse_attack("pgd:eps=0.1,radius=2")


def test_a_registered_perturbation_is_a_valid_suite_name(monkeypatch):
    monkeypatch.setattr(qa.perturb, "PERTURBATIONS", dict(qa.perturb.PERTURBATIONS))
    with pytest.raises(ValidationError):
        CorruptionAccuracyParams(perturbations=["darken"], min=0.5)
    qa.perturb.register_perturbation("darken", lambda x, s, rng: x * 0.5, "digital")
    assert CorruptionAccuracyParams(perturbations=["darken"], min=0.5).views()[1].perturbation
