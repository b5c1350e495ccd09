"""The one bootstrap every interval in qa goes through: scipy.stats.bootstrap, percentile, seeded.

Percentile rather than BCa: BCa's jackknife costs n evaluations of the statistic, too slow
for large evals, and the binned calibration errors' bias makes its acceleration unreliable.
"""

import numpy as np

from qa.metrics.intervals import two_sided_level


def bootstrap_bounds(
    statistic,
    data: tuple[np.ndarray, ...],
    confidence: float,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    vectorized: bool = False,
    paired: bool = False,
    batch: int | None = None,
) -> tuple[float, float]:
    """(lower, upper): one-sided `confidence` bounds of `statistic` over `data`, percentile.

    Both are the ends of the two-sided percentile interval at level 2c - 1, so each is the
    bound a gate at confidence c compares. `paired` resamples the arrays of `data` together.
    """
    from scipy.stats import bootstrap

    res = bootstrap(
        data,
        statistic,
        n_resamples=n_resamples,
        confidence_level=two_sided_level(confidence),
        method="percentile",
        vectorized=vectorized,
        paired=paired,
        batch=batch,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def index_bootstrap_bounds(
    statistic,
    n: int,
    confidence: float,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    vectorized: bool = False,
    batch: int | None = None,
) -> tuple[float, float]:
    """`bootstrap_bounds` of `statistic(indices)` over resampled sample indices 0..n-1.

    For statistics of several arrays judged on the same samples (paired models, every view
    of a sample): resampling indices keeps each sample's values together. A `vectorized`
    statistic takes a (resamples, n) index array and an `axis` keyword.
    """
    return bootstrap_bounds(
        statistic,
        (np.arange(n),),
        confidence,
        n_resamples=n_resamples,
        seed=seed,
        vectorized=vectorized,
        batch=batch,
    )
