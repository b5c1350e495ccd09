"""qa's percentile bootstrap is scipy.stats.bootstrap's, number for number (to float rounding).

qa draws its own resamples (importing scipy.stats costs a cold run more than every bootstrap
it computes), so each way qa calls it is held equal to scipy's on real-looking data: one array
vectorised, paired arrays vectorised, an index statistic evaluated per resample, drawn in
batches, and statistics that give NaN or infinity on some resamples.
"""

import numpy as np
import pytest
from scipy.stats import bootstrap

from qa.metrics.bootstrap import bootstrap_bounds, index_bootstrap_bounds


def _scipy(statistic, data, confidence, **kwargs):
    res = bootstrap(
        data,
        statistic,
        confidence_level=2 * confidence - 1,
        method="percentile",
        rng=np.random.default_rng(kwargs.pop("seed")),
        **kwargs,
    )
    return res.confidence_interval.low, res.confidence_interval.high


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("seed", [0, 7])
def test_a_vectorised_mean_equals_scipys(confidence, seed):
    d = np.random.default_rng(1).choice([-1.0, 0.0, 0.0, 1.0], size=500)
    ours = bootstrap_bounds(np.mean, (d,), confidence, seed=seed, vectorized=True)
    reference = _scipy(np.mean, (d,), confidence, seed=seed, vectorized=True, n_resamples=1000)
    assert ours == pytest.approx(reference, rel=1e-12)


def test_paired_arrays_equal_scipys():
    rng = np.random.default_rng(2)
    labels, pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)

    def accuracy(y, yhat, axis=-1):
        return (y == yhat).mean(axis=axis)

    kwargs = {"seed": 3, "vectorized": True, "paired": True, "n_resamples": 400}
    ours = bootstrap_bounds(accuracy, (labels, pred), 0.95, **kwargs)
    assert ours == pytest.approx(_scipy(accuracy, (labels, pred), 0.95, **kwargs), rel=1e-12)


def test_a_per_resample_index_statistic_equals_scipys():
    x = np.random.default_rng(4).normal(size=200)

    def spread(i):
        return float(np.std(x[i]))

    ours = index_bootstrap_bounds(spread, len(x), 0.95, n_resamples=300, seed=5)
    reference = _scipy(spread, (np.arange(len(x)),), 0.95, seed=5, n_resamples=300)
    assert ours == pytest.approx(reference, rel=1e-12)


@pytest.mark.parametrize("batch", [None, 64, 333])
def test_batches_draw_the_same_resamples_as_scipy(batch):
    x = np.random.default_rng(6).exponential(size=150)
    kwargs = {"seed": 1, "vectorized": True, "n_resamples": 1000, "batch": batch}
    ours = bootstrap_bounds(np.mean, (x,), 0.95, **kwargs)
    assert ours == pytest.approx(_scipy(np.mean, (x,), 0.95, **kwargs), rel=1e-12)


def test_infinite_and_nan_resamples_propagate_as_scipys():
    x = np.r_[np.zeros(40), np.ones(3)]

    def ratio(values, axis=-1):
        total = values.sum(axis=axis)
        return np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), np.inf)

    kwargs = {"seed": 0, "vectorized": True, "n_resamples": 500}
    with np.errstate(divide="ignore", invalid="ignore"):
        ours = bootstrap_bounds(ratio, (x,), 0.95, **kwargs)
        ref = _scipy(ratio, (x,), 0.95, **kwargs)
    np.testing.assert_array_equal(ours, ref)


def test_fewer_than_two_observations_are_refused():
    with pytest.raises(ValueError, match="two or more"):
        bootstrap_bounds(np.mean, (np.ones(1),), 0.95, vectorized=True)


def test_how_the_resamples_are_batched_never_changes_the_bounds():
    """Batches are a speed knob: the generator's stream is the same however it is split."""
    x = np.random.default_rng(8).exponential(size=5000)
    kwargs = {"seed": 2, "vectorized": True, "n_resamples": 1000}
    whole = bootstrap_bounds(np.mean, (x,), 0.95, batch=1000, **kwargs)
    for batch in (None, 1, 64, 333):
        assert bootstrap_bounds(np.mean, (x,), 0.95, batch=batch, **kwargs) == whole
