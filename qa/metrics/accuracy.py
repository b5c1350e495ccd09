"""Accuracy-type metrics of a classifier from its logits and the true labels.

Predictions are the argmax of the logits (ties go to the lower class index, as numpy's argmax
does), and top-k membership breaks ties the same way, so top-1 accuracy equals the accuracy
of those predictions. Confusion matrices follow scikit-learn: rows are true classes, columns
predicted classes.
"""

import numpy as np

from qa.metrics.bootstrap import arrays_digest, percentile_bounds, remembered


def predictions(logits: np.ndarray) -> np.ndarray:
    """The predicted class of every sample: the argmax of its logits, as int64."""
    return np.asarray(logits).argmax(axis=1).astype(np.int64)


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Whether each sample's true class is among its k highest logits (bool, shape (N,)).

    A class outranks the true class when its logit is larger, or equal with a lower index.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels, dtype=np.int64)
    if k < 1:
        raise ValueError(f"Expected `k` to be a positive int, but got {k}")
    true_logit = logits[np.arange(len(labels)), labels][:, None]
    index = np.arange(logits.shape[1])[None, :]
    outranks = (logits > true_logit) | ((logits == true_logit) & (index < labels[:, None]))
    return outranks.sum(axis=1) < k


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of samples whose true class is among the k highest logits (nan when empty)."""
    correct = topk_correct(logits, labels, k)
    return float(correct.mean()) if len(correct) else float("nan")


def confusion_matrix(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts: entry [i, j] is samples of class i predicted as j."""
    labels = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    codes = labels * n_classes + pred
    return np.bincount(codes, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_recall(
    labels: np.ndarray, pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recall, correct, support) per class; recall is nan for a class with no samples."""
    cm = confusion_matrix(labels, pred, n_classes)
    correct = np.diag(cm).copy()
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, correct / np.maximum(support, 1), np.nan)
    return recall, correct, support


def f1_per_class(cm: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (2TP + FP + FN) per class from a confusion matrix (or a stack of them).

    nan for a class that is neither present nor predicted, where F1 is undefined.
    """
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    predicted = cm.sum(axis=-2)
    actual = cm.sum(axis=-1)
    denominator = predicted + actual
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), np.nan)


def macro_f1(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean F1 over the classes present in labels or predictions.

    Matches sklearn.metrics.f1_score(average="macro"): a class absent from both is left out,
    so a small eval split is not punished for a class it does not contain. nan when empty.
    """
    if len(labels) == 0:
        return float("nan")
    return float(np.nanmean(f1_per_class(confusion_matrix(labels, pred, n_classes))))


def confusion_rate(
    labels: np.ndarray, pred: np.ndarray, true_class: int, predicted_class: int
) -> tuple[float, int, int]:
    """(rate, k, n): of the n samples of `true_class`, the k predicted as `predicted_class`.

    The rate is nan when the eval data holds no sample of `true_class`.
    """
    of_class = np.asarray(labels) == true_class
    n = int(of_class.sum())
    k = int((np.asarray(pred)[of_class] == predicted_class).sum())
    return (k / n if n else float("nan")), k, n


def macro_f1_rows(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """`macro_f1` of each row of (rows, n) label and prediction arrays: one per resample.

    Each row's per-class counts are bincounts of row-offset class codes, never a confusion
    matrix, so memory stays O(rows x (n + classes)) even for a thousand classes.
    """
    y, yhat = np.atleast_2d(labels), np.atleast_2d(pred)
    ones = np.ones(y.shape)
    return _macro_f1_of_counts(y, yhat, ones, n_classes)


def _macro_f1_of_counts(
    y: np.ndarray, yhat: np.ndarray, weights: np.ndarray, n_classes: int
) -> np.ndarray:
    """Macro-F1 of each row of (rows, m) samples, the j-th of row r being the pair (y[r, j],
    yhat[r, j]) counted weights[r, j] times; classes nobody is or is predicted as are left out."""
    rows = len(weights)
    offset = (np.arange(rows) * n_classes)[:, None]
    true_codes = np.broadcast_to(y + offset, weights.shape).ravel()
    pred_codes = np.broadcast_to(yhat + offset, weights.shape).ravel()

    def count(codes: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.bincount(codes, w, minlength=rows * n_classes).reshape(rows, n_classes)

    hit = np.broadcast_to(y == yhat, weights.shape).ravel()
    flat = weights.ravel().astype(np.float64)
    tp = count(true_codes[hit], flat[hit])
    both = count(true_codes, flat) + count(pred_codes, flat)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(both > 0, 2 * tp / np.maximum(both, 1), np.nan)
    return np.nanmean(f1, axis=-1)


def bootstrap_macro_f1(
    labels: np.ndarray,
    pred: np.ndarray,
    n_classes: int,
    confidence: float,
    resamples: int,
    seed: int,
) -> tuple[float, float]:
    """(lower, upper) one-sided `confidence` bounds of macro-F1: a seeded percentile
    bootstrap over samples.

    Macro-F1 depends on a resample only through how often each (label, prediction) pair
    occurs in it, and drawing n samples with replacement draws those counts from
    Multinomial(n, the pairs' frequencies): so each resample is drawn as counts, at the cost of
    the distinct pairs (at most classes^2) rather than of n samples: the same bootstrap
    distribution as resampling indices, a hundred times cheaper on a 10,000-image eval. Macro-F1
    is not a proportion, so it has no binomial bounds. (nan, nan) below two samples.
    """
    if len(labels) < 2:
        return float("nan"), float("nan")
    n = len(labels)
    pairs, counts = np.unique(
        np.asarray(labels, dtype=np.int64) * n_classes + np.asarray(pred, dtype=np.int64),
        return_counts=True,
    )

    def draw() -> np.ndarray:
        draws = np.random.default_rng(seed).multinomial(n, counts / n, size=resamples)
        return _macro_f1_of_counts(pairs // n_classes, pairs % n_classes, draws, n_classes)

    parts = {
        "statistic": ["macro_f1", n_classes],
        "data": arrays_digest(pairs, counts),
        "n_resamples": resamples,
        "seed": seed,
    }
    return percentile_bounds(remembered(parts, resamples, draw), confidence)
