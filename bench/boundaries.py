"""Models whose true value sits exactly on a gate's threshold, for bench/false_alarm.py.

Each scenario draws eval sets of n samples from a population whose value of the gated metric
is known (by construction, or computed over two million samples with the expected labels in
place of drawn ones), runs the registered check exactly as a suite does, and counts the wrong
decisions: a pass for threshold gates (the model is not better than the threshold), a fail
for regression gates (the candidate is not worse than the baseline beyond the tolerance).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qa.evidence import BASELINE, CLEAN, Evidence, View
from qa.metrics import calibration as cal

K = 10
CLASSES = [str(i) for i in range(K)]


@dataclass
class Scenario:
    """One gate kind at its boundary: how to draw an eval set, and which outcome is wrong."""

    kind: str
    what: str
    params: dict
    draw: Callable[[np.random.Generator, int], Evidence]
    wrong: str  # "pass" (false pass) or "fail" (false alarm)


def evidence(labels: np.ndarray, arrays: dict) -> Evidence:
    """An Evidence of these labels and logits, with ids that mean nothing."""
    return Evidence(CLASSES, labels, [str(i) for i in range(len(labels))], arrays)


def predicted(labels: np.ndarray, correct: np.ndarray, rng) -> np.ndarray:
    """Predictions right where `correct`, else a uniformly chosen other class."""
    return np.where(correct, labels, (labels + rng.integers(1, K, len(labels))) % K)


def one_hot_logits(pred: np.ndarray) -> np.ndarray:
    """Logits whose argmax is `pred` (calibration does not matter to these gates)."""
    return (np.eye(K)[pred] * 4.0).astype(np.float32)


def confident_logits(pred: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Logits whose softmax gives `pred` exactly `confidence` and the rest equal shares."""
    logits = np.zeros((len(pred), K))
    logits[np.arange(len(pred)), pred] = np.log(confidence * (K - 1) / (1 - confidence))
    return logits


def labels_of(rng, n: int) -> np.ndarray:
    """Balanced-in-expectation labels."""
    return rng.integers(0, K, n)


# --- accuracy family ------------------------------------------------------------------------


def _top1(rng, n):
    labels = labels_of(rng, n)
    return evidence(labels, {CLEAN: one_hot_logits(predicted(labels, rng.random(n) < 0.9, rng))})


def _top2(rng, n):
    """Rank of the true class: first 80%, second 10% (top-2 accuracy 0.9), lower 10%."""
    labels = labels_of(rng, n)
    rank = rng.choice(3, n, p=[0.8, 0.1, 0.1])
    logits = np.tile(np.linspace(0, -1, K), (n, 1)).astype(np.float32)
    order = (labels[:, None] - rank[:, None] + np.arange(K)[None, :]) % K  # label at `rank`
    out = np.empty_like(logits)
    out[np.arange(n)[:, None], order] = logits
    return evidence(labels, {CLEAN: out})


def _per_class(rng, n):
    """Class 0's recall is 0.8 (the threshold); every other class's is 0.95."""
    labels = labels_of(rng, n)
    correct = rng.random(n) < np.where(labels == 0, 0.8, 0.95)
    return evidence(labels, {CLEAN: one_hot_logits(predicted(labels, correct, rng))})


def _macro_f1(rng, n):
    """Right with probability 0.85, else a uniform other class: every class's F1 is 0.85."""
    labels = labels_of(rng, n)
    return evidence(labels, {CLEAN: one_hot_logits(predicted(labels, rng.random(n) < 0.85, rng))})


def _confusion(rng, n):
    """Class 0 is read as class 1 exactly 10% of the time."""
    labels = labels_of(rng, n)
    pred = labels.copy()
    pred[(labels == 0) & (rng.random(n) < 0.1)] = 1
    return evidence(labels, {CLEAN: one_hot_logits(pred)})


def _slice_gap(rng, n):
    """Two slices of n/2 samples, 0.95 and 0.85 accurate: slice b's gap to the whole is
    (1/2)(0.95 - 0.85) = 0.05, with the slice sizes as drawn (the gap slice_gap gates)."""
    labels = labels_of(rng, n)
    site = np.where(np.arange(n) < n // 2, "a", "b")
    correct = rng.random(n) < np.where(site == "a", 0.95, 0.85)
    ev = evidence(labels, {CLEAN: one_hot_logits(predicted(labels, correct, rng))})
    ev.metadata = {"site": site}
    return ev


ACCURACY = [
    Scenario("top1_accuracy", "accuracy 0.90", {"min": 0.9}, _top1, "pass"),
    Scenario("topk_accuracy", "top-2 accuracy 0.90", {"k": 2, "min": 0.9}, _top2, "pass"),
    Scenario("per_class_recall", "class 0 recall 0.80", {"min": 0.8}, _per_class, "pass"),
    Scenario("macro_f1", "macro-F1 0.85", {"min": 0.85}, _macro_f1, "pass"),
    Scenario(
        "confusion_rate",
        "0 read as 1, rate 0.10",
        {"true": "0", "predicted": "1", "max": 0.1},
        _confusion,
        "pass",
    ),
    Scenario(
        "slice_gap",
        "slice b 0.10 below a: gap 0.05",
        {"column": "site", "max_gap": 0.05},
        _slice_gap,
        "pass",
    ),
]

# --- data family: label issues -----------------------------------------------------------------


def _label_noise(rng, n):
    """5% of the labels are wrong (a uniform other class); the model is right and equally
    sure of every sample, so confident learning flags exactly the wrong labels: the flagged
    rate of the population is 0.05."""
    true = labels_of(rng, n)
    given = predicted(true, rng.random(n) >= 0.05, rng)
    return evidence(given, {CLEAN: one_hot_logits(true)})


DATA = [
    Scenario("label_issues", "flagged-label rate 0.05", {"max_rate": 0.05}, _label_noise, "pass"),
]

# --- calibration family -----------------------------------------------------------------------


def _temperature_population(spread: float, temperature: float):
    """Logits z ~ N(0, spread) give the true label probabilities; the model says softmax(T z)."""

    def draw_probs(rng, n):
        z = rng.normal(0, spread, (n, K))
        return z, cal.softmax(z), cal.softmax(temperature * z)

    return draw_probs


def population_values(draw_probs, bins: int = 15, n: int = 2_000_000, seed: int = 99) -> dict:
    """The metrics of the whole population: labels replaced by their probabilities."""
    _, q, p = draw_probs(np.random.default_rng(seed), n)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    hit = q[np.arange(n), pred]
    which = cal.bin_assignments(conf, bins)
    gaps = np.bincount(which, conf - hit, bins)
    mass = np.bincount(which, minlength=bins)
    classwise = []
    for k in range(K):
        b = cal.bin_assignments(p[:, k], bins)
        classwise.append(np.abs(np.bincount(b, p[:, k] - q[:, k], bins)).sum() / n)
    return {
        "ece": float(np.abs(gaps).sum() / n),
        "mce": float(np.max(np.abs(gaps[mass > 0]) / mass[mass > 0])),
        "classwise_ece": float(np.mean(classwise)),
        "brier": float(((p * p).sum(axis=1) - 2 * (p * q).sum(axis=1) + 1).mean()),
        "nll": float(-(q * np.log(p)).sum(axis=1).mean()),
    }


def _drawn(draw_probs):
    def draw(rng, n):
        z, q, _ = draw_probs(rng, n)
        labels = (q.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(max=K - 1)
        return z, labels

    return draw


def calibration_scenarios(temperature: float = 1.6, spread: float = 2.0) -> list[Scenario]:
    """ECE, MCE, classwise ECE, Brier and NLL of one overconfident population, each on its
    own threshold; and ECE of a model overconfident by exactly 0.10 everywhere."""
    draw_probs = _temperature_population(spread, temperature)
    truth = population_values(draw_probs)
    drawn = _drawn(draw_probs)

    def draw(rng, n):
        z, labels = drawn(rng, n)
        return evidence(labels, {CLEAN: (temperature * z).astype(np.float32)})

    what = f"T={temperature} overconfident, true value"
    scenarios = [
        Scenario(kind, f"{what} {truth[kind]:.4f}", {"max": truth[kind]}, draw, "pass")
        for kind in ("ece", "mce", "classwise_ece", "brier", "nll")
    ]
    scenarios.append(
        Scenario("ece", "overconfident by 0.10 everywhere", {"max": 0.1}, _gap, "pass")
    )
    return scenarios


def _gap(rng, n):
    labels = labels_of(rng, n)
    confidence = 0.2 + 0.8 * rng.beta(6, 1, n).clip(max=0.999)
    correct = rng.random(n) < confidence - 0.1
    return evidence(labels, {CLEAN: confident_logits(predicted(labels, correct, rng), confidence)})


# --- regression family ------------------------------------------------------------------------


def _pair(p10: float, p01: float, accuracy: float = 0.85):
    """Draw (baseline right, candidate right) with P(base only) = p10, P(cand only) = p01."""

    def draw_ok(rng, n):
        both = accuracy - p10
        u = rng.random(n)
        base_ok = u < both + p10
        cand_ok = (u < both) | ((u >= both + p10) & (u < both + p10 + p01))
        return base_ok, cand_ok

    return draw_ok


def _paired(draw_ok):
    def draw(rng, n):
        labels = labels_of(rng, n)
        base_ok, cand_ok = draw_ok(rng, n)
        return evidence(
            labels,
            {
                CLEAN: one_hot_logits(predicted(labels, cand_ok, rng)),
                BASELINE: one_hot_logits(predicted(labels, base_ok, rng)),
            },
        )

    return draw


def _calibrated_pair(rng, n):
    """Both models perfectly calibrated; the candidate far less confident than the baseline."""
    labels = labels_of(rng, n)
    arrays = {}
    for view, confidence in (
        (CLEAN, rng.uniform(0.3, 0.99, n)),
        (BASELINE, 1 - 0.3 * rng.beta(0.3, 3, n).clip(1e-3)),
    ):
        pred = predicted(labels, rng.random(n) < confidence, rng)
        arrays[view] = confident_logits(pred, confidence)
    return evidence(labels, arrays)


FAMILIES = ("gaussian_noise", "defocus_blur")


def _robust_pair(rng, n):
    """Under every corruption view the two models are equally good (discordant 5% each way)."""
    labels = labels_of(rng, n)
    arrays = {}
    draw_ok = _pair(0.05, 0.05, accuracy=0.7)
    for name in FAMILIES:
        for s in (1, 2):
            base_ok, cand_ok = draw_ok(rng, n)
            arrays[View(perturbation=name, severity=s)] = one_hot_logits(
                predicted(labels, cand_ok, rng)
            )
            arrays[View(model="baseline", perturbation=name, severity=s)] = one_hot_logits(
                predicted(labels, base_ok, rng)
            )
    return evidence(labels, arrays)


def _agreeing(flips: int):
    """The candidate is the baseline plus float noise far below its margins, with exactly
    `flips` predictions changed: prediction_agreement's count is exact, so a candidate with
    exactly max_flips changes must pass every time, and one with one more fail every time."""

    def draw(rng, n):
        labels = labels_of(rng, n)
        base = one_hot_logits(predicted(labels, rng.random(n) < 0.85, rng))
        cand = base + rng.normal(0, 1e-6, base.shape).astype(np.float32)
        changed = rng.choice(n, flips, replace=False)
        cand[changed] = np.roll(cand[changed], 1, axis=1)  # another class on top
        return evidence(labels, {CLEAN: cand, BASELINE: base})

    return draw


REGRESSION = [
    Scenario(
        "prediction_agreement",
        "exactly 2 changed predictions = max_flips",
        {"max_flips": 2},
        _agreeing(2),
        "fail",
    ),
    Scenario(
        "prediction_agreement",
        "exactly 3 changed predictions > max_flips 2",
        {"max_flips": 2},
        _agreeing(3),
        "pass",
    ),
    Scenario("accuracy_regression", "equal accuracy", {}, _paired(_pair(0.05, 0.05)), "fail"),
    Scenario(
        "accuracy_regression",
        "drop 0.01 = tolerance",
        {"tolerance": 0.01},
        _paired(_pair(0.06, 0.05)),
        "fail",
    ),
    Scenario("mcnemar", "equal accuracy", {}, _paired(_pair(0.05, 0.05)), "fail"),
    Scenario(
        "negative_flip_rate", "flip rate 0.05", {"max": 0.05}, _paired(_pair(0.05, 0.03)), "pass"
    ),
    Scenario("per_class_regression", "every class equal", {}, _paired(_pair(0.05, 0.05)), "fail"),
    Scenario(
        "per_class_regression",
        "every class drops 0.05 = tolerance",
        {"tolerance": 0.05},
        _paired(_pair(0.07, 0.02)),
        "fail",
    ),
    Scenario(
        "calibration_regression",
        "both calibrated, candidate less confident",
        {},
        _calibrated_pair,
        "fail",
    ),
    Scenario(
        "robustness_regression",
        "equal under 2 corruptions x 2 severities",
        {"perturbations": list(FAMILIES), "severities": [1, 2]},
        _robust_pair,
        "fail",
    ),
]
