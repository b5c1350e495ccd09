"""One-sided confidence bounds for binned calibration errors, free of the plug-in's bias.

The plug-in ECE, sum_b w_b |m_b| (w_b the share of samples in bin b, m_b their mean gap
between confidence and correctness), is biased upwards: |m_b| of a perfectly calibrated bin
is the absolute value of pure noise, about 0.8 of its standard error. The bias depends on how
the confidences spread over the bins, so a percentile bootstrap of the plug-in fails
well-calibrated models and compares two models' ECEs unfairly. qa bounds the error two ways
and keeps the smaller bound, each at (1 + c) / 2 so that together they hold at c:

- Plug-in plus its noise: for the true signs s_b of the gaps, sum_b w_b |m_b| >= sum_b w_b s_b
  m_b, an unbiased estimate of the ECE with variance sum_b w_b^2 v_b (v_b the variance of
  m_b). So ECE_plugin + z * sqrt(sum_b w_b^2 v_b) is an upper bound. Tight for confident
  models, whose samples crowd into a few full bins.
- The debiased RMS calibration error: sum_b w_b (m_b^2 - v_b) is unbiased for the squared RMS
  error sum_b w_b delta_b^2 (Kumar, Liang & Ma 2019), and RMS >= ECE by Jensen's inequality.
  Its bound inverts a normal test whose variance, sum_b w_b^2 (4 delta_b^2 v_b + 2 v_b^2), is
  taken at the hypothesised error (delta_b^2 = max(observed, theta^2)), so a low draw cannot
  also shrink the variance it is judged by. Tight when the samples spread over many bins.

Several groups (classwise ECE: one one-vs-rest group per class) are averaged; their standard
errors are added, which can only widen the bound when the groups are correlated.
Written here because no maintained library bounds calibration errors; the bench
bench/false_alarm.py simulates each bound on its threshold.
"""

from statistics import NormalDist

import numpy as np

from qa.metrics.calibration import bin_assignments

Groups = list[tuple[np.ndarray, np.ndarray]]  # [(confidence, correct)] per group


def bin_moments(confidence: np.ndarray, correct: np.ndarray, n_bins: int, binning: str):
    """Per bin: share of samples w, mean gap m (confidence - correct), variance v of m.

    v is Kumar et al.'s unbiased estimate, acc (1 - acc) / (count - 1) with acc the bin's
    accuracy; a bin holding one sample takes the Bernoulli variance of its confidence,
    c (1 - c), which makes m^2 - v unbiased for a calibrated bin (Kumar et al. drop such bins).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bins = bin_assignments(confidence, n_bins, binning)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    size = np.maximum(count, 1)
    accuracy = np.bincount(bins, correct, n_bins) / size
    mean = np.bincount(bins, confidence, n_bins) / size - accuracy
    single = np.bincount(bins, confidence * (1 - confidence), n_bins)
    variance = np.where(count >= 2, accuracy * (1 - accuracy) / np.maximum(count - 1, 1), single)
    return count / len(correct), mean, variance


def _moments(groups: Groups, n_bins: int, binning: str) -> np.ndarray:
    """(groups, 3, bins): w, m, v of every group."""
    return np.array([bin_moments(c, y, n_bins, binning) for c, y in groups])


def plugin_upper(moments: np.ndarray, z: float) -> float:
    """Mean over groups of the plug-in ECE, plus z times its summed standard errors."""
    w, m, v = moments[:, 0], moments[:, 1], moments[:, 2]
    plugin = (w * np.abs(m)).sum(axis=1).mean()
    se = np.sqrt((w * w * v).sum(axis=1)).mean()
    return float(plugin + z * se)


def _squared(moments: np.ndarray) -> tuple[float, np.ndarray]:
    w, m, v = moments[:, 0], moments[:, 1], moments[:, 2]
    per_bin = m * m - v
    return float((w * per_bin).sum(axis=1).mean()), per_bin


def _spread(moments: np.ndarray, per_bin: np.ndarray, theta: float) -> float:
    """Standard error of the debiased squared error if the RMS error were `theta`."""
    w, v = moments[:, 0], moments[:, 2]
    var = (w * w * (4 * np.maximum(per_bin, theta * theta) * v + 2 * v * v)).sum(axis=1)
    return float(np.sqrt(var).mean())


def _rms(moments: np.ndarray) -> float:
    """The debiased RMS calibration error: the root of the unbiased squared error, floored at 0."""
    return float(np.sqrt(max(_squared(moments)[0], 0.0)))


def rms_bounds(moments: np.ndarray, z: float) -> tuple[float, float, float]:
    """(debiased RMS error, lower, upper): the bounds invert the normal test at level z."""
    squared, per_bin = _squared(moments)

    def above(theta: float) -> float:  # > 0: an RMS error of theta is rejected as too large
        return theta * theta - squared - z * _spread(moments, per_bin, theta)

    def below(theta: float) -> float:  # > 0: an RMS error of theta is rejected as too small
        return squared - z * _spread(moments, per_bin, theta) - theta * theta

    grid = np.linspace(0.0, 1.0, 201)
    kept = [t for t in grid if above(t) <= 0]
    upper = _bisect(above, float(kept[-1]), min(float(kept[-1] + grid[1]), 1.0)) if kept else 0.0
    lower = _bisect(below, 0.0, 1.0) if below(0.0) > 0 else 0.0
    return _rms(moments), lower, upper


def _bisect(fn, low: float, high: float) -> float:
    """Where fn's sign changes in [low, high] (to 1e-12), or `high` if it does not."""
    start = fn(low) > 0
    if (fn(high) > 0) == start:
        return high
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if (fn(mid) > 0) == start else (low, mid)
    return high


def calibration_error_bounds(groups: Groups, n_bins: int, binning: str, confidence: float):
    """Bounds of the (mean over groups of the) binned calibration error at `confidence`.

    Returns {"ece_upper": the smaller of the two upper bounds (module docstring), "rmsce",
    "rmsce_low", "rmsce_high": the debiased RMS error and its own bounds at `confidence`}.
    """
    moments = _moments(groups, n_bins, binning)
    z_half = float(_normal_quantile((1 + confidence) / 2))
    rms_half = rms_bounds(moments, z_half)
    rms, low, high = rms_bounds(moments, float(_normal_quantile(confidence)))
    upper = min(plugin_upper(moments, z_half), rms_half[2])
    return {"ece_upper": upper, "rmsce": rms, "rmsce_low": low, "rmsce_high": high}


def rms_increase_bounds(
    candidate: Groups, baseline: Groups, n_bins: int, binning: str, confidence: float
) -> tuple[float, float]:
    """(lower, upper) `confidence` bounds of RMS(candidate) - RMS(baseline): each side at
    (1 + c) / 2.

    The lower is the candidate's lower bound minus the baseline's upper bound, so the increase
    is overstated only when one of two bounds at (1 + c) / 2 misses: at most 1 - c together,
    whatever the two models' confidence profiles; the upper, symmetrically, the other ends.
    """
    z_half = float(_normal_quantile((1 + confidence) / 2))
    _, cand_low, cand_high = rms_bounds(_moments(candidate, n_bins, binning), z_half)
    _, base_low, base_high = rms_bounds(_moments(baseline, n_bins, binning), z_half)
    return cand_low - base_high, cand_high - base_low


def rms_increase(
    candidate: Groups, baseline: Groups, n_bins: int, binning: str, confidence: float
) -> dict:
    """How much worse the candidate's debiased RMS calibration error is than the baseline's.

    {"candidate_rmsce", "baseline_rmsce", "increase": their difference, "increase_lower",
    "increase_upper": `rms_increase_bounds`, "mde": increase - increase_lower}. The mde is what the two bounds
    give away: an increase smaller than it cannot be shown at `confidence`.
    """
    cand = _rms(_moments(candidate, n_bins, binning))
    base = _rms(_moments(baseline, n_bins, binning))
    lower, upper = rms_increase_bounds(candidate, baseline, n_bins, binning, confidence)
    return {
        "candidate_rmsce": cand,
        "baseline_rmsce": base,
        "increase": cand - base,
        "increase_lower": lower,
        "increase_upper": upper,
        "mde": float(cand - base - lower),
    }


def top_label_groups(probs: np.ndarray, labels: np.ndarray) -> Groups:
    """The one group of top-label calibration: confidence of the predicted class, hit or not."""
    return [(probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.float64))]


def classwise_groups(probs: np.ndarray, labels: np.ndarray) -> Groups:
    """One one-vs-rest group per class: that class's probability, and whether it is the label."""
    return [(probs[:, k], (labels == k).astype(np.float64)) for k in range(probs.shape[1])]


def calibrated_uppers(
    probs: np.ndarray,
    grouping,
    n_bins: int,
    binning: str,
    confidence: float,
    *,
    draws: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """`ece_upper` of `draws` perfectly calibrated models with these probabilities, sorted.

    Labels are drawn from the model's own probabilities, so the model is calibrated by
    construction: if even then the bound often misses a threshold, the eval set is too small
    to certify it, and a model whose bound lies within this spread cannot be told from a
    calibrated one (what a gate reports as inconclusive rather than failed).
    """
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probs, axis=1)
    uppers = []
    for _ in range(draws):
        u = rng.random((len(probs), 1)) * cumulative[:, -1:]
        labels = np.minimum((cumulative < u).sum(axis=1), probs.shape[1] - 1)
        groups = grouping(probs, labels)
        uppers.append(calibration_error_bounds(groups, n_bins, binning, confidence)["ece_upper"])
    return np.sort(uppers)


def samples_to_certify(n: int, bound: float, limit: float) -> int:
    """About how many samples would bring a bound of `bound` at `n` samples down to `limit`.

    A bound's excess over a calibrated model's zero error is sampling noise, which shrinks
    like 1 / sqrt(n): n (bound / limit)^2 samples, rounded up to hundreds (an estimate to
    plan with, not a promise).
    """
    return int(np.ceil(n * (bound / limit) ** 2 / 100) * 100)


def _normal_quantile(p: float) -> float:
    """The standard normal quantile, from the standard library (scipy.stats.norm.ppf to 1e-15,
    without importing scipy on every calibration gate)."""
    return NormalDist().inv_cdf(p)
