"""Robustness metrics: accuracy and flips under perturbation, corruption errors and mCE.

Formulas of Hendrycks & Dietterich (2019), with E_{s,f} the top-1 error of the model under
corruption f at severity s, E_clean its clean error, and E^ref those of a reference model:

    CE_f          = sum_s E_{s,f} / sum_s E^ref_{s,f}
    relative CE_f = sum_s (E_{s,f} - E_clean) / sum_s (E^ref_{s,f} - E^ref_clean)
    mCE           = mean_f CE_f,        relative mCE = mean_f relative CE_f

The paper's reference is AlexNet; here it is the suite's baseline model or, without one, a
"clean reference": a model whose error under every corruption equals the candidate's clean
error and whose clean error is 0, which gives CE_f = mean_s E_{s,f} / E_clean and relative
CE_f = mean_s (E_{s,f} - E_clean) / E_clean. A denominator that is not positive makes the
quotient undefined: nan, never a silently huge or negative number.

Gates compare bounds, not these point estimates: `relative_drop_bounds` inverts the score
test of a ratio of paired proportions; `mce_bounds` is a paired percentile bootstrap over
samples (every view of a sample, the reference's too, resampled together).
"""

import math

import numpy as np

from qa.metrics.bootstrap import index_bootstrap_bounds

_BATCH_ELEMENTS = 100_000  # resampled indices per bootstrap batch: fast, small in memory


def error_rate(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 error: the fraction of samples whose argmax is not the label (nan when empty)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    return float((np.asarray(logits).argmax(axis=1) != labels).mean())


def flip_rate(clean_logits: np.ndarray, perturbed_logits: np.ndarray) -> float:
    """Fraction of samples whose top-1 prediction differs from the clean one (nan when empty)."""
    clean = np.asarray(clean_logits).argmax(axis=1)
    if len(clean) == 0:
        return float("nan")
    return float((np.asarray(perturbed_logits).argmax(axis=1) != clean).mean())


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def corruption_error(errors, reference_errors) -> float:
    """CE_f: the summed errors over severities divided by the reference's summed errors."""
    errors, reference = np.asarray(errors, float), np.asarray(reference_errors, float)
    if errors.shape != reference.shape or errors.size == 0:
        raise ValueError(f"Expected errors of equal length, got {errors.shape} {reference.shape}")
    return _ratio(errors.sum(), reference.sum())


def relative_corruption_error(
    errors, clean_error: float, reference_errors, reference_clean_error: float
) -> float:
    """Relative CE_f: the error added by the corruption over the reference's added error."""
    errors, reference = np.asarray(errors, float), np.asarray(reference_errors, float)
    if errors.shape != reference.shape or errors.size == 0:
        raise ValueError(f"Expected errors of equal length, got {errors.shape} {reference.shape}")
    return _ratio((errors - clean_error).sum(), (reference - reference_clean_error).sum())


def mean_corruption_error(
    errors: dict[str, list[float]],
    clean_error: float,
    reference_errors: dict[str, list[float]],
    reference_clean_error: float,
) -> dict:
    """mCE and relative mCE over the corruptions of `errors` (name -> errors by severity).

    Returns {"mce", "relative_mce", "ce": {name: CE_f}, "relative_ce": {name: ...}}; a mean
    is nan when any of its terms is.
    """
    ce = {f: corruption_error(errors[f], reference_errors[f]) for f in errors}
    rel = {
        f: relative_corruption_error(
            errors[f], clean_error, reference_errors[f], reference_clean_error
        )
        for f in errors
    }
    return {
        "mce": float(np.mean(list(ce.values()))),
        "relative_mce": float(np.mean(list(rel.values()))),
        "ce": ce,
        "relative_ce": rel,
    }


def _batch(n: int) -> int:
    return max(8, _BATCH_ELEMENTS // max(n, 1))


def _resampled_means(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Column means of `values` (n, m) over each row of resampled `indices` (b, n): (b, m).

    Counting how often each sample was drawn and multiplying by the values costs the same for
    one column or a hundred, where gathering every view's values would cost per view.
    """
    indices = np.atleast_2d(indices)
    rows, n = indices.shape
    codes = (indices + n * np.arange(rows)[:, None]).ravel()
    counts = np.bincount(codes, minlength=rows * n).reshape(rows, n)
    return counts @ values / n


def _ratio_score(both: int, only_corrupted: int, only_clean: int, n: int, ratio: float) -> float:
    """Score statistic of H0: P(corrupted hit) / P(clean hit) = `ratio`, on paired outcomes.

    Tang, Tang & Chan (2003), Stat. Med. 22:1217, with the closed-form restricted maximum
    likelihood estimate of P(only clean hits). Decreasing in `ratio`; 0 at the estimate.
    """
    a = n * (1 + ratio)
    b = (both + only_clean) * ratio**2 - (both + only_corrupted + 2 * only_clean)
    c = only_clean * (1 - ratio) * (both + only_corrupted + only_clean) / n
    p_only_clean = (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)
    var = n * (1 + ratio) * p_only_clean + (both + only_corrupted + only_clean) * (ratio - 1)
    num = both + only_corrupted - ratio * (both + only_clean)
    if var <= 0:
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def relative_drop_bounds(
    clean_correct: np.ndarray, corrupted_correct: np.ndarray, confidence: float
) -> tuple[float, float]:
    """(lower, upper) one-sided `confidence` bounds of (clean - corrupted) / clean accuracy.

    The drop is 1 - r, r the ratio of two paired proportions (corrupted over clean accuracy
    on the same samples); r's bounds invert its score test (`_ratio_score`). A score bound,
    like Wilson's for one proportion, keeps a model on the threshold passing about 1 - c of
    the time, where a percentile bootstrap of the ratio passes it too often (6.5% instead of
    5% at n = 270, 5.7% at n = 2000, simulating bench/boundary_robustness.py's drop scenario).
    (nan, nan) without a clean hit: there is no ratio to bound.
    """
    from scipy.optimize import brentq
    from scipy.stats import norm

    clean = np.asarray(clean_correct, dtype=bool)
    corrupted = np.asarray(corrupted_correct, dtype=bool)
    both = int((clean & corrupted).sum())
    counts = (both, int((corrupted & ~clean).sum()), int((clean & ~corrupted).sum()), len(clean))
    if both + counts[2] == 0:
        return float("nan"), float("nan")
    z = float(norm.ppf(confidence))
    estimate = (both + counts[1]) / (both + counts[2])

    def excess(ratio: float, target: float) -> float:
        return _ratio_score(*counts, ratio) - target

    low = 0.0 if excess(0.0, z) <= 0 else brentq(excess, 0.0, estimate, args=(z,))
    high = max(estimate, 1.0)
    while excess(high, -z) > 0:  # the score falls like -sqrt(ratio): a few doublings
        high *= 2
    high = brentq(excess, estimate, high, args=(-z,))
    return 1 - high, 1 - low


def corruption_error_terms(
    errors: dict[str, np.ndarray],
    clean_errors: np.ndarray,
    reference_errors: dict[str, np.ndarray],
    reference_clean_errors: np.ndarray,
    relative: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample numerators and denominators (n, F) of every CE_f (or relative CE_f).

    `errors[f]` is (severities, n) of 0/1 errors, `clean_errors` (n,); the reference's alike
    (the clean reference: the candidate's clean errors at every severity, zero clean errors).
    CE_f is numerators[:, f].mean() / denominators[:, f].mean(), the formulas above per
    sample, so a bootstrap over samples resamples every view, the reference's too, together.
    """
    num, den = [], []
    for f, e in errors.items():
        e, r = np.asarray(e, float), np.asarray(reference_errors[f], float)
        severities = len(e)
        num.append(e.sum(axis=0) - (severities * np.asarray(clean_errors) if relative else 0))
        den.append(
            r.sum(axis=0) - (severities * np.asarray(reference_clean_errors) if relative else 0)
        )
    return np.array(num, dtype=float).T, np.array(den, dtype=float).T


def mce_bounds(
    numerators: np.ndarray,
    denominators: np.ndarray,
    confidence: float,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """(lower, upper) one-sided `confidence` bounds of mean_f (mean num_f / mean den_f).

    The terms come from `corruption_error_terms`. A percentile bootstrap that resamples
    samples, each with its outcomes in every view (the reference's too): the paired
    bootstrap. A resample whose reference makes no error (a denominator not positive) counts
    as +inf, so the upper bound, which gates, never profits from it, and enough such
    resamples make it infinite: an error, not a pass. (nan, nan) below two samples.
    """
    n, families = numerators.shape
    if n < 2:
        return float("nan"), float("nan")
    values = np.hstack([numerators, denominators])

    def statistic(indices: np.ndarray, axis: int = -1) -> np.ndarray:
        means = _resampled_means(values, indices)
        num, den = means[:, :families], means[:, families:]
        return np.where(den > 0, num / den, np.inf).mean(axis=1)

    with np.errstate(divide="ignore", invalid="ignore"):
        return index_bootstrap_bounds(
            statistic,
            n,
            confidence,
            n_resamples=n_resamples,
            seed=seed,
            vectorized=True,
            batch=_batch(n),
        )
