"""The one bootstrap every interval in qa goes through: scipy.stats.bootstrap, percentile, seeded.

Percentile rather than BCa: BCa's jackknife costs n evaluations of the statistic, too slow
for large evals, and the binned calibration errors' bias makes its acceleration unreliable.
"""

import numpy as np


def bootstrap_bounds(
    statistic,
    data: tuple[np.ndarray, ...],
    confidence: float,
    *,
    alternative: str = "two-sided",
    n_resamples: int = 1000,
    seed: int = 0,
    vectorized: bool = False,
    paired: bool = False,
    batch: int | None = None,
) -> tuple[float, float]:
    """(low, high) of the percentile bootstrap interval of `statistic` over `data`.

    alternative "less" gives a one-sided upper bound (low is -inf), "greater" a lower one.
    `paired` resamples the arrays of `data` together (the same rows of each).
    """
    from scipy.stats import bootstrap

    res = bootstrap(
        data,
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        alternative=alternative,
        method="percentile",
        vectorized=vectorized,
        paired=paired,
        batch=batch,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
