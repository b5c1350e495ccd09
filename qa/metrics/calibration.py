"""Calibration metrics: can the model's confidence be trusted? Arrays in, numbers out.

Equal-width bins follow torchmetrics' MulticlassCalibrationError: bin i holds confidences in
[i/B, (i+1)/B), so the numbers agree with that independent implementation (a confidence of
exactly 1.0 joins the last bin here, where torchmetrics gives it a bin of its own).
Equal-mass (adaptive) bins split the samples sorted by confidence into B near-equal groups
(Nguyen & O'Connor 2015), which keeps every bin populated when confidences crowd near 1;
tied confidences share a bin, so the split never depends on the samples' order.
"""

import numpy as np

from qa.metrics.bootstrap import arrays_digest, index_bootstrap_bounds

BINNINGS = ("width", "mass")
METRICS = ("ece", "mce", "classwise_ece", "brier", "nll")  # what a calibration gate compares


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def bin_assignments(confidence: np.ndarray, n_bins: int, binning: str = "width") -> np.ndarray:
    """The bin index (0..n_bins-1) of each confidence under the chosen binning."""
    if binning not in BINNINGS:
        raise ValueError(f"Expected `binning` to be one of {BINNINGS}, but got {binning!r}")
    if n_bins < 1:
        raise ValueError(f"Expected `n_bins` to be a positive int, but got {n_bins}")
    confidence = np.asarray(confidence, dtype=np.float64)
    if binning == "width":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        return np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    # Equal mass by value, not by position: each bin starts at the confidence found where
    # the sorted samples would split evenly, and equal confidences always share a bin, so
    # the result does not depend on the order of tied samples.
    ordered = np.sort(confidence)
    starts = np.cumsum([len(c) for c in np.array_split(ordered, n_bins)])[:-1]
    return np.searchsorted(ordered[starts], confidence, side="right")


def reliability(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15, binning: str = "width"
) -> list[dict]:
    """Per bin: confidence range, mean confidence, accuracy and count (empty bins included).

    This is the reliability diagram's data, and the sums behind ECE and MCE.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bins = bin_assignments(confidence, n_bins, binning)
    out = []
    for i in range(n_bins):
        m = bins == i
        n = int(m.sum())
        if binning == "width":
            lo, hi = i / n_bins, (i + 1) / n_bins
        else:
            lo, hi = (float(confidence[m].min()), float(confidence[m].max())) if n else (0.0, 0.0)
        out.append(
            {
                "lo": lo,
                "hi": hi,
                "count": n,
                "confidence": float(confidence[m].mean()) if n else None,
                "accuracy": float(correct[m].mean()) if n else None,
            }
        )
    return out


def _gaps(confidence, correct, n_bins, binning) -> tuple[np.ndarray, np.ndarray]:
    bins = reliability(confidence, correct, n_bins, binning)
    counts = np.array([b["count"] for b in bins], dtype=np.float64)
    gaps = np.array([abs(b["confidence"] - b["accuracy"]) if b["count"] else 0.0 for b in bins])
    return gaps, counts


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15, binning: str = "width"
) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over bins."""
    gaps, counts = _gaps(confidence, correct, n_bins, binning)
    return float((gaps * counts).sum() / counts.sum())


def maximum_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15, binning: str = "width"
) -> float:
    """MCE: the largest confidence-accuracy gap over non-empty bins."""
    gaps, counts = _gaps(confidence, correct, n_bins, binning)
    return float(gaps[counts > 0].max())


def top_label(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidence of the predicted class and whether that prediction is correct."""
    probs = np.asarray(probs)
    return probs.max(axis=1), (probs.argmax(axis=1) == np.asarray(labels)).astype(np.float64)


def classwise_ece(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15, binning: str = "width"
) -> tuple[float, list[float]]:
    """Classwise ECE (Kull et al. 2019): each class's one-vs-rest ECE, and their mean.

    Unlike top-label ECE it also sees miscalibration of the classes the model did not pick.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    per_class = [
        expected_calibration_error(probs[:, k], labels == k, n_bins, binning)
        for k in range(probs.shape[1])
    ]
    return float(np.mean(per_class)), per_class


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multiclass Brier score: mean over samples of the squared distance to the one-hot label."""
    probs = np.asarray(probs, dtype=np.float64)
    onehot = np.eye(probs.shape[1])[np.asarray(labels)]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (natural log), from logits."""
    lp = log_softmax(logits)
    return float(-lp[np.arange(len(lp)), np.asarray(labels)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T in [0.01, 100] minimising the NLL of logits / T (Guo et al. 2017).

    The NLL is convex in b = 1/T, with derivative mean(E_p[z] - z_label) and second derivative
    mean(Var_p[z]) under the softmax p of b * z: safeguarded Newton steps (bisection whenever a
    step leaves the bracket) find the optimum to 1e-12 in b. Written out because its one
    library equivalent, scipy.optimize.minimize_scalar, costs every calibration gate the import
    of scipy.optimize, longer than the fit; tests hold the two equal.
    """
    z = np.asarray(logits, dtype=np.float64)
    z_label = z[np.arange(len(z)), np.asarray(labels)]

    def slope_and_curvature(b: float) -> tuple[float, float]:
        p = softmax(b * z)
        mean = (p * z).sum(axis=1)
        variance = (p * z * z).sum(axis=1) - mean * mean
        return float((mean - z_label).mean()), float(variance.mean())

    low, high = 0.01, 100.0  # b's bracket, as T's
    if slope_and_curvature(low)[0] >= 0:
        return 1 / low
    if slope_and_curvature(high)[0] <= 0:
        return 1 / high
    b = 1.0
    for _ in range(200):
        slope, curvature = slope_and_curvature(b)
        low, high = (b, high) if slope < 0 else (low, b)
        step = b - slope / curvature if curvature > 0 else np.inf
        if abs(step - b) <= 1e-12 * b:  # Newton has converged
            return float(1 / step)
        b = step if low < step < high else (low + high) / 2
        if high - low <= 1e-12 * high:
            break
    return float(1 / b)


def metric(name: str, logits: np.ndarray, labels: np.ndarray, n_bins: int, binning: str) -> float:
    """One of METRICS of these logits, by name: the number a calibration gate compares."""
    if name == "nll":
        return negative_log_likelihood(logits, labels)
    probs = softmax(logits)
    if name == "brier":
        return brier_score(probs, labels)
    if name == "classwise_ece":
        return classwise_ece(probs, labels, n_bins, binning)[0]
    conf, correct = top_label(probs, labels)
    if name == "ece":
        return expected_calibration_error(conf, correct, n_bins, binning)
    if name == "mce":
        return maximum_calibration_error(conf, correct, n_bins, binning)
    raise ValueError(f"Expected `name` to be one of {METRICS}, but got {name!r}")


def resampled(name: str, logits: np.ndarray, labels: np.ndarray, n_bins: int, binning: str):
    """`metric` as a function of resampled index arrays, and whether that function is vectorised.

    The per-sample work (softmax, bins) is done once here, not once per bootstrap resample;
    means and equal-width bin sums then vectorise across resamples with bincount. A vectorised
    function takes a (resamples, n) index array and an `axis` keyword.
    """
    n = len(labels)
    probs = softmax(logits)
    if name in ("nll", "brier"):
        if name == "nll":
            per_sample = -log_softmax(logits)[np.arange(n), labels]
        else:
            per_sample = ((probs - np.eye(probs.shape[1])[labels]) ** 2).sum(axis=1)
        return (lambda i, axis=-1: per_sample[i].mean(axis=-1)), True
    if name in ("ece", "mce") and binning == "width":
        conf, correct = top_label(probs, labels)
        bins = bin_assignments(conf, n_bins, "width")

        def binned(i: np.ndarray, axis: int = -1) -> np.ndarray:
            i = np.atleast_2d(i)
            size = len(i) * n_bins
            codes = (bins[i] + n_bins * np.arange(len(i))[:, None]).ravel()
            count = np.bincount(codes, minlength=size).reshape(len(i), n_bins)
            conf_sum = np.bincount(codes, conf[i].ravel(), size).reshape(count.shape)
            hits = np.bincount(codes, correct[i].ravel(), size).reshape(count.shape)
            gap = np.abs(conf_sum - hits)  # = count * |mean confidence - accuracy| per bin
            if name == "ece":
                return gap.sum(axis=1) / count.sum(axis=1)
            return (gap / np.maximum(count, 1)).max(axis=1)

        return binned, True
    return (lambda i: metric(name, logits[i], labels[i], n_bins, binning)), False


def bootstrap_metric_bounds(
    name: str,
    logits: np.ndarray,
    labels: np.ndarray,
    n_bins: int,
    binning: str,
    confidence: float,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """(lower, upper) one-sided `confidence` bounds of `metric`: a seeded percentile bootstrap
    over samples (qa.metrics.bootstrap), vectorised where `resampled` can be; its distribution
    is kept by the metric and the logits and labels it was drawn from."""
    statistic, vectorized = resampled(name, logits, labels, n_bins, binning)
    memo = {
        "statistic": ["calibration", name, n_bins, binning],
        "data": arrays_digest(logits, labels),
    }
    return index_bootstrap_bounds(
        statistic,
        len(labels),
        confidence,
        n_resamples=n_resamples,
        seed=seed,
        vectorized=vectorized,
        memo=memo,
    )
