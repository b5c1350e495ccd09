"""Confidence bounds for a binomial proportion (k successes in n trials).

Every gate in qa compares a one-sided bound at the suite's `confidence` c with its threshold,
so a model whose true value sits exactly on the threshold passes with probability at most
1 - c. `binomial_bounds` gives both one-sided c bounds at once: they are the ends of the
two-sided interval at level 2c - 1 (a 90% interval carries two one-sided 95% bounds).
Wilson is the default (well centred, never outside [0, 1]); Clopper-Pearson ("exact") is
conservative: its coverage is at least the nominal confidence for every true proportion.
"""

import math
from statistics import NormalDist

INTERVAL_METHODS = ("wilson", "clopper_pearson")
DEFAULT_CONFIDENCE = 0.95  # a suite's `defaults.confidence` unless it says otherwise
DEFAULT_METHOD = "wilson"  # a suite's `defaults.interval` unless it says otherwise


def two_sided_level(confidence: float) -> float:
    """The two-sided level whose ends are one-sided `confidence` bounds: 2c - 1."""
    if not 0.5 < confidence < 1:
        raise ValueError(f"Expected `confidence` in (0.5, 1), but got {confidence}")
    return 2 * confidence - 1


def binomial_bounds(
    k: int, n: int, confidence: float = DEFAULT_CONFIDENCE, method: str = DEFAULT_METHOD
) -> tuple[float, float]:
    """(lower, upper): one-sided `confidence` bounds for the proportion k/n, by `method`.

    What gates compare: a `min` gate passes when the lower bound clears it, a `max` gate when
    the upper bound does. With n = 0 nothing is known: (nan, nan), which no gate passes.
    """
    return binomial_interval(k, n, two_sided_level(confidence), method)


def binomial_interval(
    k: int, n: int, confidence: float = 0.95, method: str = DEFAULT_METHOD
) -> tuple[float, float]:
    """(low, high) of the two-sided `confidence` interval for the proportion k/n.

    The formulas of scipy.stats.binomtest(k, n).proportion_ci (the tests hold them equal),
    with the normal quantile from the standard library and the beta quantile from
    scipy.special: every run computes these, and importing scipy.stats would cost a cold run
    more than all its gates together. With k = 0 the low end is exactly 0 and
    with k = n the high end is exactly 1. With n = 0 nothing is known: (nan, nan), which no
    gate passes. Gates use `binomial_bounds`, which states its level as one-sided bounds.
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"Expected `method` to be one of {INTERVAL_METHODS}, but got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"Expected `confidence` in (0, 1), but got {confidence}")
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"Expected 0 <= k <= n, but got k={k}, n={n}")
    if n == 0:
        return math.nan, math.nan
    low, high = _INTERVALS[method](k, n, (1 - confidence) / 2)
    low = 0.0 if k == 0 else min(max(low, 0.0), 1.0)
    high = 1.0 if k == n else min(max(high, 0.0), 1.0)
    return low, high


def bonferroni_level(confidence: float, tests: int) -> float:
    """The confidence each of `tests` bounds needs so that all hold together at `confidence`.

    Bonferroni: each test may err with probability (1 - c) / m, so by the union bound the
    chance that any errs is at most 1 - c, whatever the dependence between the tests.
    """
    if tests < 1:
        raise ValueError(f"Expected `tests` to be a positive int, but got {tests}")
    return 1.0 - (1.0 - confidence) / tests


def _wilson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson's score interval without continuity correction (Newcombe 1998, method 3)."""
    z = NormalDist().inv_cdf(1 - alpha)
    p = k / n
    denom = 2 * (n + z * z)
    center = (2 * n * p + z * z) / denom
    delta = z / denom * math.sqrt(4 * n * p * (1 - p) + z * z)
    return center - delta, center + delta


def _clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Clopper-Pearson: the quantiles of Beta(k, n - k + 1) and Beta(k + 1, n - k) at alpha
    and 1 - alpha, where the binomial tail probabilities equal alpha."""
    from scipy.special import betaincinv

    low = float(betaincinv(k, n - k + 1, alpha)) if k > 0 else 0.0
    high = float(betaincinv(k + 1, n - k, 1 - alpha)) if k < n else 1.0
    return low, high


_INTERVALS = {"wilson": _wilson, "clopper_pearson": _clopper_pearson}
