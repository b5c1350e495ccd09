"""How big the effect is, not only which way the gate went: every gate's `effect`.

A gate compares one number with its threshold; a reader also needs the point estimate, its
interval at the suite's confidence, and, for a regression gate, both models' values, the
delta with its interval and the smallest drop the data could have shown (MDE). `effect`
gathers them from a check's metrics into one dict every report renders the same way:

    estimate, low, high   the point estimate and its interval (each end the one-sided bound
                          at `confidence` that a `>=` or `<=` gate compares), or None
    value, op, threshold  the compared number and the gate (`compared`: "bound" or "point")
    measure, candidate, baseline, delta, delta_low, delta_high, mde
                          regression gates only (None elsewhere): what both models measured
    borderline            the interval (from the estimate to its bound, for a one-sided statistic
                          such as the ECE's upper bound) holds the threshold: more data could
                          flip the verdict
    more_samples          for a borderline decision, roughly how many more samples would settle
                          it if the estimate held; None when it cannot be said (on the threshold)

`more_samples` assumes the interval narrows as 1/sqrt(n), the rate of every interval qa
computes (binomial, bootstrap, debiased calibration): the side of the interval facing the
threshold shrinks from w to |estimate - threshold| at n * (w / |estimate - threshold|)^2.
"""

import math
from typing import Any

_REGRESSION = ("candidate", "baseline", "delta", "delta_lower", "delta_upper", "mde")


def effect(
    metric: str,
    op: str,
    threshold: float,
    metrics: dict[str, Any],
    estimate: tuple[str, str | None, str | None] | None = None,
) -> dict[str, Any]:
    """The effect of a gate `metrics[metric] op threshold` (see the module docstring).

    `estimate` names the metrics keys of the point estimate and its interval ends; by
    default `metric` less a `_low`/`_high` suffix, with `<that>_low` and `<that>_high`.
    """
    point, low_key, high_key = estimate or _keys(metric, metrics)
    point_value = _number(metrics.get(point))
    low, high = _number(metrics.get(low_key)), _number(metrics.get(high_key))
    # a one-sided statistic (the ECE's upper bound) spans from its estimate to its bound
    span = [x for x in (low, point_value, high) if x is not None]
    borderline = len(span) > 1 and min(span) <= threshold <= max(span)
    n = metrics.get("n")
    out = {
        "estimate": point_value,
        "low": low,
        "high": high,
        "confidence": _number(metrics.get("confidence")),
        "value": _number(metrics.get(metric)),
        "compared": "point" if metric == point else "bound",
        "op": op,
        "threshold": threshold,
        "measure": None,
        "candidate": None,
        "baseline": None,
        "delta": None,
        "delta_low": None,
        "delta_high": None,
        "mde": None,
        "n": n if isinstance(n, int) else None,
        "borderline": borderline,
        "more_samples": _more_samples(point_value, min(span), max(span), threshold, n)
        if borderline
        else None,
    }
    if "candidate" in metrics and "baseline" in metrics:
        cand, base, delta, delta_low, delta_high, mde = (
            _number(metrics.get(k)) for k in _REGRESSION
        )
        out.update(
            measure=str(metrics.get("measure", "accuracy")),
            candidate=cand,
            baseline=base,
            delta=delta,
            delta_low=delta_low,
            delta_high=delta_high,
            mde=mde,
        )
    return out


def _keys(metric: str, metrics: dict) -> tuple[str, str | None, str | None]:
    base = metric.removesuffix("_low").removesuffix("_high")
    if base == metric or base not in metrics:
        base = metric
    return base, f"{base}_low", f"{base}_high"


def _more_samples(estimate, low, high, threshold: float, n) -> int | None:
    if estimate is None or not isinstance(n, int) or n <= 0 or estimate == threshold:
        return None
    width = estimate - low if estimate > threshold else high - estimate
    needed = math.ceil(n * (width / abs(estimate - threshold)) ** 2)
    return max(needed - n, 1)


def _number(value) -> float | None:
    """A finite number as float; None for anything else (absent, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
