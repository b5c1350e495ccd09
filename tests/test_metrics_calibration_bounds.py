"""Bounds of binned calibration errors: against Kumar et al.'s reference and hand-worked values."""

import numpy as np
import pytest
from scipy.stats import norm

from qa.metrics import calibration as cal
from qa.metrics import calibration_bounds as cb


def test_debiased_squared_error_matches_the_reference_implementation():
    from calibration.utils import fast_bin, get_equal_prob_bins, unbiased_square_ce

    rng = np.random.default_rng(0)
    for gap in (0.0, 0.05, 0.2):
        conf = rng.uniform(0.25, 1.0, 3000)
        correct = (rng.random(3000) < conf - gap).astype(float)
        binned = fast_bin(list(zip(conf, correct, strict=True)), get_equal_prob_bins(conf, 15))
        moments = cb._moments([(conf, correct)], 15, "width")
        assert cb._squared(moments)[0] == pytest.approx(unbiased_square_ce(binned), abs=1e-15)


def test_bin_moments_by_hand():
    conf = np.array([0.9, 0.8, 0.7, 0.2])
    correct = np.array([1.0, 0.0, 1.0, 0.0])
    w, m, v = cb.bin_moments(conf, correct, 2, "width")
    assert w.tolist() == [0.25, 0.75]
    # high bin: mean confidence 0.8, accuracy 2/3; variance (2/3)(1/3)/(3 - 1)
    assert m[1] == pytest.approx(0.8 - 2 / 3) and v[1] == pytest.approx(1 / 9)
    # a bin of one sample takes its confidence's Bernoulli variance
    assert m[0] == pytest.approx(0.2) and v[0] == pytest.approx(0.2 * 0.8)


def test_plugin_upper_adds_z_standard_errors_to_the_plugin_ece():
    conf = np.array([0.9, 0.8, 0.7, 0.2])
    correct = np.array([1.0, 0.0, 1.0, 0.0])
    moments = cb._moments([(conf, correct)], 2, "width")
    plugin = cal.expected_calibration_error(conf, correct, 2)
    se = np.sqrt(0.25**2 * 0.16 + 0.75**2 / 9)
    assert cb.plugin_upper(moments, 1.645) == pytest.approx(plugin + 1.645 * se)


def test_rms_bounds_invert_the_normal_test():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.3, 1.0, 5000)
    correct = (rng.random(5000) < conf - 0.08).astype(float)
    moments = cb._moments([(conf, correct)], 15, "width")
    z = norm.ppf(0.95)
    rms, low, high = cb.rms_bounds(moments, z)
    assert low < 0.08 < high and low < rms < high
    squared, per_bin = cb._squared(moments)
    # at each bound the test statistic sits exactly on its critical value
    assert high**2 == pytest.approx(squared + z * cb._spread(moments, per_bin, high), abs=1e-9)
    assert low**2 == pytest.approx(squared - z * cb._spread(moments, per_bin, low), abs=1e-9)


def test_a_calibrated_model_gets_a_small_bound_and_a_miscalibrated_one_a_large_lower_bound():
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.3, 1.0, 20_000)
    calibrated = (rng.random(20_000) < conf).astype(float)
    bounds = cb.calibration_error_bounds([(conf, calibrated)], 15, "width", 0.95)
    assert bounds["ece_upper"] < 0.02 and bounds["rmsce_low"] == 0.0
    off = (rng.random(20_000) < conf - 0.1).astype(float)
    bounds = cb.calibration_error_bounds([(conf, off)], 15, "width", 0.95)
    assert bounds["rmsce_low"] > 0.09 and bounds["ece_upper"] > 0.1


def test_the_increase_bound_is_below_zero_for_one_model_against_itself():
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.3, 1.0, 2000)
    groups = [(conf, (rng.random(2000) < conf).astype(float))]
    assert cb.rms_increase_bounds(groups, groups, 15, "width", 0.95)[0] < 0


def test_calibrated_reference_is_seeded_and_shrinks_with_more_samples():
    rng = np.random.default_rng(4)
    z = rng.normal(0, 2, (4000, 5))
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    args = (cb.top_label_groups, 15, "width", 0.95)
    small = cb.calibrated_uppers(probs[:300], *args, seed=1)
    assert (small == cb.calibrated_uppers(probs[:300], *args, seed=1)).all()
    assert (np.diff(small) >= 0).all() and len(small) == 20
    large = cb.calibrated_uppers(probs, *args, seed=1)
    assert np.median(large) < np.median(small) / 2


def test_rms_increase_is_the_difference_of_debiased_errors_and_its_bound():
    from calibration.utils import fast_bin, get_equal_prob_bins, unbiased_square_ce

    rng = np.random.default_rng(5)
    conf = rng.uniform(0.3, 1.0, 3000)
    cand = [(conf, (rng.random(3000) < conf - 0.08).astype(float))]
    base = [(conf, (rng.random(3000) < conf).astype(float))]
    out = cb.rms_increase(cand, base, 15, "width", 0.95)

    def reference(groups):  # Kumar et al.'s debiased squared error, floored at 0, rooted
        (c, y), bins = groups[0], get_equal_prob_bins(conf, 15)  # their equal-width bins
        return np.sqrt(max(unbiased_square_ce(fast_bin(list(zip(c, y, strict=True)), bins)), 0.0))

    assert out["candidate_rmsce"] == pytest.approx(reference(cand), rel=1e-6)
    assert out["baseline_rmsce"] == pytest.approx(reference(base), rel=1e-6)
    assert out["increase"] == pytest.approx(out["candidate_rmsce"] - out["baseline_rmsce"])
    bounds = cb.rms_increase_bounds(cand, base, 15, "width", 0.95)
    assert (out["increase_lower"], out["increase_upper"]) == bounds
    # hand-worked: what the bounds give away is the distance from the estimate to its bound
    assert out["mde"] == pytest.approx(out["increase"] - out["increase_lower"])
    assert 0 < out["increase_lower"] < out["increase"] < out["increase_upper"]


@pytest.mark.parametrize(
    ("n", "bound", "limit", "expected"),
    # 1000 (0.15 / 0.1)^2 = 2250 -> 2300; 500 (0.1 / 0.1)^2 = 500; 270 (0.2 / 0.05)^2 = 4320 -> 4400
    [(1000, 0.15, 0.1, 2300), (500, 0.1, 0.1, 500), (270, 0.2, 0.05, 4400)],
)
def test_samples_to_certify_scales_like_one_over_root_n_by_hand(n, bound, limit, expected):
    assert cb.samples_to_certify(n, bound, limit) == expected
