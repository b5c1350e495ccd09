"""Paired comparisons' statistics against hand-worked values and independent references."""

import numpy as np
import pytest
from scipy.stats import bootstrap, norm
from sklearn.metrics import f1_score

from qa.metrics import paired


def test_accuracy_mde_uses_the_observed_discordance_by_hand():
    # 100 samples, 20 discordant: psi = 0.2 (above the baseline's 0.1 error rate)
    base = np.array([True] * 90 + [False] * 10)
    cand = base.copy()
    cand[:10] = False
    cand[90:100] = True
    mde = paired.accuracy_mde(base, cand, 0.95)
    za, zb = norm.ppf(0.95), norm.ppf(paired.POWER)
    # Connor's relation holds at the answer: n d^2 = (za sqrt(psi) + zb sqrt(psi - d^2))^2
    assert 100 * mde**2 == pytest.approx((za * np.sqrt(0.2) + zb * np.sqrt(0.2 - mde**2)) ** 2)
    assert mde == paired.minimum_detectable_effect(100, 0.2, 0.95, paired.POWER)


def test_accuracy_mde_of_identical_models_floors_at_the_baseline_error_rate():
    base = np.array([True] * 75 + [False] * 25)
    # identical models disagree nowhere; a real drop would disagree at least 25% of the time
    assert paired.accuracy_mde(base, base, 0.95) == paired.minimum_detectable_effect(
        100, 0.25, 0.95, paired.POWER
    )
    perfect = np.ones(50, dtype=bool)  # no error at all: one sample's worth of discordance
    assert paired.accuracy_mde(perfect, perfect, 0.95) == paired.minimum_detectable_effect(
        50, 1 / 50, 0.95, paired.POWER
    )
    assert paired.accuracy_mde(base[:0], base[:0], 0.95) == float("inf")


def test_macro_f1_delta_bounds_are_scipys_paired_bootstrap_of_sklearns_delta():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 120)
    base = np.where(rng.random(120) < 0.8, labels, rng.integers(0, 3, 120))
    cand = np.where(rng.random(120) < 0.7, labels, rng.integers(0, 3, 120))
    low, upper = paired.macro_f1_delta_bounds(labels, base, cand, 3, 0.95, 300, seed=4)

    def delta(y, b, c):
        return f1_score(y, c, average="macro") - f1_score(y, b, average="macro")

    # the same resamples drawn by scipy itself, resampling the three arrays together
    reference = bootstrap(
        (labels, base, cand),
        delta,
        paired=True,
        vectorized=False,
        n_resamples=300,
        confidence_level=0.9,
        method="percentile",
        rng=np.random.default_rng(4),
    ).confidence_interval
    assert (low, upper) == pytest.approx((reference.low, reference.high), abs=1e-12)
