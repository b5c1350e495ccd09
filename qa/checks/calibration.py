"""Calibration family: can the model's confidence be trusted?

Computed from the clean logits the engine already has (no extra inference). Every result
carries a one-sided upper bound at the suite's confidence, the reliability-diagram bins, and
the temperature that would
fix the model, fitted on a calibration split (`data.calibration` in the suite) or, when there
is none, on a seeded half of eval and judged on the other half, so the fix is never scored
on the data it was fitted to.

ECE and classwise ECE gate on a bound free of the plug-in estimate's upward bias (see
qa.metrics.calibration_bounds); when the eval set is too small for even a perfectly calibrated
model to clear `max`, the result is an error that says so and how many samples would do,
rather than a plain fail. MCE, Brier and NLL gate on a percentile bootstrap bound; the plug-in
MCE is biased upwards too, which makes its gate conservative.
"""

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from qa.checks import CheckParams, CheckResult, gate, register
from qa.evidence import CLEAN, Evidence, View
from qa.metrics import calibration as cal
from qa.metrics import calibration_bounds as cal_bounds
from qa.metrics.bootstrap import index_bootstrap_bounds

CALIBRATION_VIEW = View(split="calibration")
MIN_CALIBRATION_SAMPLES = 50


class CalibrationParams(CheckParams):
    """Gate a calibration metric from above."""

    max: float = Field(ge=0, description="largest acceptable value of the metric")
    bins: int = Field(15, ge=1, le=1000, description="number of confidence bins")
    binning: Literal["width", "mass"] = Field("width", description="equal-width or equal-mass bins")
    gate_on: Literal["point", "upper_bound"] = Field(
        "upper_bound", description="compare the one-sided upper bound or the point estimate"
    )
    resamples: int = Field(1000, ge=100, description="bootstrap resamples")
    seed: int = Field(0, description="bootstrap and hold-out seed")
    example: ClassVar[dict] = {"max": 0.1}

    def views(self) -> list[View]:
        """Clean eval logits, and the calibration split's when the suite declares one."""
        return [CLEAN, CALIBRATION_VIEW]


def _metric(kind: str, logits: np.ndarray, labels: np.ndarray, p: CalibrationParams) -> float:
    probs = cal.softmax(logits)
    if kind == "nll":
        return cal.negative_log_likelihood(logits, labels)
    if kind == "brier":
        return cal.brier_score(probs, labels)
    if kind == "classwise_ece":
        return cal.classwise_ece(probs, labels, p.bins, p.binning)[0]
    conf, correct = cal.top_label(probs, labels)
    if kind == "ece":
        return cal.expected_calibration_error(conf, correct, p.bins, p.binning)
    return cal.maximum_calibration_error(conf, correct, p.bins, p.binning)


def _resampled(kind: str, logits: np.ndarray, labels: np.ndarray, p: CalibrationParams):
    """The metric as a function of resampled index arrays, and whether it is vectorised.

    The per-sample work (softmax, bins) is done once here, not once per bootstrap resample;
    means and equal-width bin sums then vectorise across resamples with bincount.
    """
    n = len(labels)
    probs = cal.softmax(logits)
    if kind in ("nll", "brier"):
        if kind == "nll":
            per_sample = -cal.log_softmax(logits)[np.arange(n), labels]
        else:
            per_sample = ((probs - np.eye(probs.shape[1])[labels]) ** 2).sum(axis=1)
        return (lambda i, axis=-1: per_sample[i].mean(axis=-1)), True
    if kind in ("ece", "mce") and p.binning == "width":
        conf, correct = cal.top_label(probs, labels)
        bins = cal.bin_assignments(conf, p.bins, "width")

        def binned(i: np.ndarray, axis: int = -1) -> np.ndarray:
            i = np.atleast_2d(i)
            size = len(i) * p.bins
            codes = (bins[i] + p.bins * np.arange(len(i))[:, None]).ravel()
            count = np.bincount(codes, minlength=size).reshape(len(i), p.bins)
            conf_sum = np.bincount(codes, conf[i].ravel(), size).reshape(count.shape)
            hits = np.bincount(codes, correct[i].ravel(), size).reshape(count.shape)
            gap = np.abs(conf_sum - hits)  # = count * |mean confidence - accuracy| per bin
            if kind == "ece":
                return gap.sum(axis=1) / count.sum(axis=1)
            return (gap / np.maximum(count, 1)).max(axis=1)

        return binned, True
    return (lambda i: _metric(kind, logits[i], labels[i], p)), False


def temperature_fix(kind: str, evidence: Evidence, p: CalibrationParams) -> dict:
    """Fit a temperature on the calibration data and report the metric before and after it."""
    logits, labels = evidence.logits(CLEAN), evidence.labels
    if CALIBRATION_VIEW in evidence.arrays:
        fit_logits = evidence.arrays[CALIBRATION_VIEW]
        fit_labels = evidence.split_labels["calibration"]
        source, test_logits, test_labels = "calibration split", logits, labels
    else:
        order = np.random.default_rng(p.seed).permutation(len(labels))
        fit, held = order[: len(order) // 2], order[len(order) // 2 :]
        fit_logits, fit_labels = logits[fit], labels[fit]
        source, test_logits, test_labels = "half of eval", logits[held], labels[held]
    if len(fit_labels) < MIN_CALIBRATION_SAMPLES:
        return {
            "fitted": False,
            "reason": f"the {source} has {len(fit_labels)} samples; fitting a temperature "
            f"needs at least {MIN_CALIBRATION_SAMPLES}",
        }
    t = cal.fit_temperature(fit_logits, fit_labels)
    return {
        "fitted": True,
        "temperature": t,
        "fitted_on": source,
        "n_fit": len(fit_labels),
        "judged_on": "eval" if source == "calibration split" else "the other half of eval",
        "before": _metric(kind, test_logits, test_labels, p),
        "after": _metric(kind, test_logits / t, test_labels, p),
    }


# The binned ECEs gate on bounds free of the plug-in's bias (qa.metrics.calibration_bounds);
# MCE, Brier and NLL on a percentile bootstrap of the metric itself.
BOUNDED = {"ece": cal_bounds.top_label_groups, "classwise_ece": cal_bounds.classwise_groups}


def _upper(kind: str, logits, labels, p: CalibrationParams, confidence: float) -> dict:
    """The metric's point estimate and its one-sided upper bound, with what else explains it."""
    value = _metric(kind, logits, labels, p)
    if kind in BOUNDED:
        groups = BOUNDED[kind](cal.softmax(logits), labels)
        bounds = cal_bounds.calibration_error_bounds(groups, p.bins, p.binning, confidence)
        return {kind: value, f"{kind}_high": bounds.pop("ece_upper"), **bounds}
    statistic, vectorized = _resampled(kind, logits, labels, p)
    low, high = index_bootstrap_bounds(
        statistic,
        len(labels),
        confidence,
        n_resamples=p.resamples,
        seed=p.seed,
        vectorized=vectorized,
    )
    return {kind: value, f"{kind}_low": low, f"{kind}_high": high}


def _inconclusive(kind: str, logits, metrics: dict, p: CalibrationParams) -> str | None:
    """Why a failed bound is inconclusive, or None when the failure stands.

    Inconclusive: a perfectly calibrated model with these confidences would miss `max` one time
    in five or more (the eval set is too small to certify it), and this model's bound lies
    within the spread such calibrated models show (it cannot be told from one). A model whose
    bound lies beyond that spread fails plainly.
    """
    if kind not in BOUNDED:
        return None
    probs, n = cal.softmax(logits), metrics["n"]
    uppers = cal_bounds.calibrated_uppers(
        probs, BOUNDED[kind], p.bins, p.binning, metrics["confidence"], seed=p.seed
    )
    reference = float(np.quantile(uppers, 0.8))
    metrics["calibrated_upper_80"] = reference
    if reference <= p.max or metrics[f"{kind}_high"] > uppers[-1]:
        return None
    needed = int(np.ceil(n * (reference / p.max) ** 2 / 100) * 100)
    return (
        f"inconclusive: {n} samples cannot certify {kind} <= {p.max:g} with these confidences "
        f"(a perfectly calibrated model's upper bound exceeds it 1 time in 5 or more, at "
        f"{reference:.3f}); about {needed:,} samples would, or fewer bins"
    )


def _evaluate(kind: str, what: str, evidence: Evidence, p: CalibrationParams) -> CheckResult:
    logits, labels = evidence.logits(CLEAN), evidence.labels
    bad = int((~np.isfinite(logits)).any(axis=1).sum())
    if bad:
        return CheckResult("error", f"{bad} of {len(labels)} samples have NaN or infinite logits")
    metrics = _upper(kind, logits, labels, p, evidence.confidence)
    metrics |= {"n": len(labels), "confidence": evidence.confidence}
    deciding = kind if p.gate_on == "point" else f"{kind}_high"
    bound = "" if p.gate_on == "point" else f" upper {evidence.confidence:.0%} bound"
    result = gate(deciding, metrics[deciding], "<=", p.max, metrics, f"{what}{bound}")
    if result.status == "fail" and p.gate_on != "point":
        result.message += f" ({what} {metrics[kind]:.4f})"
        reason = _inconclusive(kind, logits, metrics, p)
        if reason is not None:
            result.status, result.message = "error", f"{reason}; {result.message}"
    conf, correct = cal.top_label(cal.softmax(logits), labels)
    fix = temperature_fix(kind, evidence, p)
    result.details = {
        "reliability": cal.reliability(conf, correct, p.bins, p.binning),
        "binning": p.binning,
        "bins": p.bins,
        "temperature_fix": fix,
    }
    if fix["fitted"]:
        metrics["fitted_temperature"] = fix["temperature"]
        if result.status == "fail":
            result.message += (
                f"; at T={fix['temperature']:.2f}, {what} {fix['before']:.3f} -> "
                f"{fix['after']:.3f} (fitted on {fix['fitted_on']}, judged on {fix['judged_on']})"
            )
    elif result.status == "fail":
        result.message += f"; no temperature fitted: {fix['reason']}"
    return result


def _register(kind: str, what: str, summary: str) -> None:
    def check(evidence: Evidence, params: CalibrationParams) -> CheckResult:
        return _evaluate(kind, what, evidence, params)

    check.__doc__ = summary
    check.__name__ = kind
    register(kind, "calibration", CalibrationParams)(check)


_register("ece", "ECE", "Expected calibration error (top label), gated from above.")
_register("mce", "MCE", "Maximum calibration error over bins, gated from above.")
_register("classwise_ece", "classwise ECE", "Mean one-vs-rest ECE over classes, from above.")
_register("brier", "Brier score", "Multiclass Brier score, gated from above.")
_register("nll", "NLL", "Negative log-likelihood of the true class, gated from above.")
