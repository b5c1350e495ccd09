"""Calibration metrics against hand-worked values and independent implementations."""

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss
from torchmetrics.functional.classification import multiclass_calibration_error

from qa.metrics import calibration as cal
from qa.metrics.bootstrap import index_bootstrap_bounds

CONF = np.array([0.9, 0.8, 0.3, 0.6])
CORRECT = np.array([1, 0, 0, 1])


def test_equal_width_ece_and_mce_by_hand():
    # bins [0, .5): {.3} gap .3 ; [.5, 1): {.9, .8, .6} conf .7667 acc .6667 gap .1
    assert cal.expected_calibration_error(CONF, CORRECT, 2, "width") == pytest.approx(0.15)
    assert cal.maximum_calibration_error(CONF, CORRECT, 2, "width") == pytest.approx(0.3)


def test_equal_mass_ece_and_mce_by_hand():
    # sorted: {.3, .6} conf .45 acc .5 gap .05 ; {.8, .9} conf .85 acc .5 gap .35
    assert cal.expected_calibration_error(CONF, CORRECT, 2, "mass") == pytest.approx(0.2)
    assert cal.maximum_calibration_error(CONF, CORRECT, 2, "mass") == pytest.approx(0.35)


def test_reliability_bins_carry_counts_and_empty_bins():
    bins = cal.reliability(CONF, CORRECT, 4, "width")
    assert [b["count"] for b in bins] == [0, 1, 1, 2]  # [0,.25) [.25,.5) [.5,.75) [.75,1]
    assert bins[0]["accuracy"] is None
    assert bins[3]["confidence"] == pytest.approx(0.85) and bins[3]["accuracy"] == 0.5


def test_brier_and_nll_by_hand():
    probs = np.array([[0.7, 0.3], [0.4, 0.6]])
    assert cal.brier_score(probs, np.array([0, 0])) == pytest.approx((0.18 + 0.72) / 2)
    assert cal.negative_log_likelihood(np.zeros((3, 2)), np.array([0, 1, 0])) == pytest.approx(
        np.log(2)
    )


def test_classwise_ece_by_hand():
    # class 0: p=[.8,.3] y=[1,0] -> bins(2): {.3}->gap .3, {.8}->gap .2 -> .25
    # class 1: p=[.2,.7] y=[0,1] -> {.2}->gap .2, {.7}->gap .3 -> .25
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    mean, per_class = cal.classwise_ece(probs, np.array([0, 1]), 2)
    assert per_class == pytest.approx([0.25, 0.25]) and mean == pytest.approx(0.25)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_torchmetrics_and_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(2000, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 2000)
    probs = cal.softmax(logits)
    conf, correct = cal.top_label(probs, labels)
    t_probs, t_labels = torch.from_numpy(probs), torch.from_numpy(labels)
    for norm, ours in (
        ("l1", cal.expected_calibration_error),
        ("max", cal.maximum_calibration_error),
    ):
        ref = multiclass_calibration_error(t_probs, t_labels, num_classes=5, n_bins=10, norm=norm)
        assert ours(conf, correct, 10, "width") == pytest.approx(float(ref), abs=1e-6)
    assert cal.brier_score(probs, labels) == pytest.approx(
        brier_score_loss(labels, probs, labels=range(5), scale_by_half=False)
    )
    assert cal.negative_log_likelihood(logits, labels) == pytest.approx(
        log_loss(labels, probs, labels=range(5)), rel=1e-6
    )


def test_fitted_temperature_recovers_the_overconfidence_factor():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=(5000, 4))
    p = cal.softmax(true_logits)
    labels = np.array([rng.choice(4, p=row) for row in p])  # labels drawn from the model itself
    assert cal.fit_temperature(3.0 * true_logits, labels) == pytest.approx(3.0, rel=0.1)
    assert cal.fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("scale", [0.004, 0.3, 1.0, 3.0, 40.0, 500.0])
def test_fitted_temperature_is_scipys_bounded_minimum(scale):
    """The hand-written Newton fit finds the minimum scipy's minimize_scalar finds over the
    same range of T, including optima pinned at either end of [0.01, 100]."""
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, size=(2000, 6))
    p = cal.softmax(true_logits)
    labels = np.array([rng.choice(6, p=row) for row in p])
    logits = scale * true_logits
    reference = minimize_scalar(
        lambda log_t: cal.negative_log_likelihood(logits / np.exp(log_t), labels),
        bounds=(np.log(0.01), np.log(100.0)),
        method="bounded",
        options={"xatol": 1e-9},
    )
    t = cal.fit_temperature(logits, labels)
    assert t == pytest.approx(float(np.exp(reference.x)), rel=1e-5)
    assert 0.01 <= t <= 100
    nll = cal.negative_log_likelihood(logits / t, labels)
    assert nll <= reference.fun + 1e-12


def test_index_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    a = index_bootstrap_bounds(lambda i: x[i].mean(), 300, 0.95, seed=7)
    assert a == index_bootstrap_bounds(lambda i: x[i].mean(), 300, 0.95, seed=7)
    assert a[0] < x.mean() < a[1]
    # each end is a one-sided 95% bound: for a mean, close to the normal one, 1.645 sd / sqrt(n)
    assert a[1] - a[0] == pytest.approx(2 * 1.645 * x.std() / np.sqrt(300), rel=0.15)


def test_rejects_bad_binning_arguments():
    with pytest.raises(ValueError, match="Expected `binning`"):
        cal.bin_assignments(CONF, 2, "quantile")
    with pytest.raises(ValueError, match="Expected `n_bins` to be a positive int, but got 0"):
        cal.bin_assignments(CONF, 0)


def test_equal_mass_bins_do_not_depend_on_the_order_of_tied_confidences():
    rng = np.random.default_rng(0)
    conf = np.round(rng.uniform(0.5, 1.0, 300), 2)  # many ties, as softmax of few logits gives
    correct = rng.random(300) < conf
    values = []
    for _ in range(20):
        order = rng.permutation(300)
        values.append(cal.expected_calibration_error(conf[order], correct[order], 10, "mass"))
    assert max(values) - min(values) < 1e-12  # summation order only
    bins = cal.bin_assignments(conf, 10, "mass")
    for c in np.unique(conf):
        assert len(set(bins[conf == c])) == 1  # equal confidences share a bin


def test_metric_by_name_is_the_metric_itself():
    rng = np.random.default_rng(4)
    logits, labels = rng.normal(0, 3, (300, 4)), rng.integers(0, 4, 300)
    probs = cal.softmax(logits)
    conf, correct = cal.top_label(probs, labels)
    expected = {
        "ece": cal.expected_calibration_error(conf, correct, 8, "mass"),
        "mce": cal.maximum_calibration_error(conf, correct, 8, "mass"),
        "classwise_ece": cal.classwise_ece(probs, labels, 8, "mass")[0],
        "brier": cal.brier_score(probs, labels),
        "nll": cal.negative_log_likelihood(logits, labels),
    }
    assert set(expected) == set(cal.METRICS)
    for kind, value in expected.items():
        assert cal.metric(kind, logits, labels, 8, "mass") == value
    with pytest.raises(ValueError, match="name"):
        cal.metric("ace", logits, labels, 8, "mass")


@pytest.mark.parametrize("kind", ["ece", "mce", "nll", "brier", "classwise_ece"])
def test_resampled_statistic_equals_the_metric_on_the_same_indices(kind):
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(0, 3, (500, 5)), rng.integers(0, 5, 500)
    statistic, vectorized = cal.resampled(kind, logits, labels, 15, "width")
    idx = rng.integers(0, 500, (7, 500))
    got = statistic(idx) if vectorized else [statistic(i) for i in idx]
    assert np.allclose(got, [cal.metric(kind, logits[i], labels[i], 15, "width") for i in idx])
    assert vectorized == (kind != "classwise_ece")


def test_bootstrap_bounds_of_nll_are_the_quantiles_of_resampled_log_loss():
    rng = np.random.default_rng(6)
    logits, labels = rng.normal(0, 2, (400, 3)), rng.integers(0, 3, 400)
    low, high = cal.bootstrap_metric_bounds(
        "nll", logits, labels, 15, "width", 0.95, n_resamples=2000, seed=0
    )
    # a seeded loop over resamples with scikit-learn's log loss: the 5% and 95% quantiles
    probs = cal.softmax(logits)
    draws = np.random.default_rng(1).integers(0, 400, (2000, 400))
    reference = [log_loss(labels[i], probs[i], labels=range(3)) for i in draws]
    assert low == pytest.approx(np.quantile(reference, 0.05), abs=0.01)
    assert high == pytest.approx(np.quantile(reference, 0.95), abs=0.01)
