"""Calibration family: can the model's confidence be trusted?

Computed from the clean logits the engine already has (no extra inference). Every result
carries a one-sided upper bound at the suite's confidence, the reliability-diagram bins, and
the temperature that would fix the model, fitted on a calibration split (`data.calibration`
in the suite) or, when there is none, on a seeded half of eval and judged on the other half,
so the fix is never scored on the data it was fitted to.

ECE and classwise ECE gate on a bound free of the plug-in estimate's upward bias (see
qa.metrics.calibration_bounds); when the eval set is too small for even a perfectly calibrated
model to clear `max`, the result is an error that says so and how many samples would do,
rather than a plain fail. MCE, Brier and NLL gate on a percentile bootstrap bound; the plug-in
MCE is biased upwards too, which makes its gate conservative.
"""

from typing import ClassVar

import numpy as np
from pydantic import Field

from qa.checks import CheckParams, CheckResult, finite_logits, gate, gated_on, register
from qa.checks.params import Binning, Bins, GateOn, Resamples, Seed
from qa.evidence import CLEAN, Evidence, View
from qa.metrics import calibration as cal
from qa.metrics import calibration_bounds as cal_bounds

CALIBRATION_VIEW = View(split="calibration")
MIN_CALIBRATION_SAMPLES = 50


class CalibrationParams(CheckParams):
    """Gate a calibration metric from above."""

    max: float = Field(ge=0, description="largest acceptable value of the metric")
    bins: Bins = 15
    binning: Binning = "width"
    gate_on: GateOn = "bound"
    resamples: Resamples = 1000
    seed: Seed = 0
    example: ClassVar[dict] = {"max": 0.1}

    def views(self) -> list[View]:
        """Clean eval logits, and the calibration split's when the suite declares one."""
        return [CLEAN, CALIBRATION_VIEW]


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
        "before": cal.metric(kind, test_logits, test_labels, p.bins, p.binning),
        "after": cal.metric(kind, test_logits / t, test_labels, p.bins, p.binning),
    }


# The binned ECEs gate on bounds free of the plug-in's bias (qa.metrics.calibration_bounds);
# MCE, Brier and NLL on a percentile bootstrap of the metric itself.
BOUNDED = {"ece": cal_bounds.top_label_groups, "classwise_ece": cal_bounds.classwise_groups}


def _upper(kind: str, logits, labels, p: CalibrationParams, confidence: float) -> dict:
    """The metric's point estimate and its one-sided upper bound, with what else explains it."""
    value = cal.metric(kind, logits, labels, p.bins, p.binning)
    if kind in BOUNDED:
        groups = BOUNDED[kind](cal.softmax(logits), labels)
        bounds = cal_bounds.calibration_error_bounds(groups, p.bins, p.binning, confidence)
        return {kind: value, f"{kind}_high": bounds.pop("ece_upper"), **bounds}
    low, high = cal.bootstrap_metric_bounds(
        kind,
        logits,
        labels,
        p.bins,
        p.binning,
        confidence,
        n_resamples=p.resamples,
        seed=p.seed,
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
    needed = cal_bounds.samples_to_certify(n, reference, p.max)
    return (
        f"inconclusive: {n} samples cannot certify {kind} <= {p.max:g} with these confidences "
        f"(a perfectly calibrated model's upper bound exceeds it 1 time in 5 or more, at "
        f"{reference:.3f}); about {needed:,} samples would, or fewer bins"
    )


def _evaluate(kind: str, what: str, evidence: Evidence, p: CalibrationParams) -> CheckResult:
    """Gate calibration metric `kind` (`what` in words) and explain a failure."""
    logits, labels = finite_logits(evidence), evidence.labels
    metrics = _upper(kind, logits, labels, p, evidence.confidence)
    metrics |= {"n": len(labels), "confidence": evidence.confidence}
    deciding, bound = gated_on(kind, "<=", p.gate_on, evidence.confidence)
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


@register("ece", "calibration", CalibrationParams)
def ece(evidence: Evidence, p: CalibrationParams) -> CheckResult:
    """Expected calibration error (top label), gated from above."""
    return _evaluate("ece", "ECE", evidence, p)


@register("mce", "calibration", CalibrationParams)
def mce(evidence: Evidence, p: CalibrationParams) -> CheckResult:
    """Maximum calibration error over bins, gated from above."""
    return _evaluate("mce", "MCE", evidence, p)


@register("classwise_ece", "calibration", CalibrationParams)
def classwise_ece(evidence: Evidence, p: CalibrationParams) -> CheckResult:
    """Mean one-vs-rest ECE over classes, from above."""
    return _evaluate("classwise_ece", "classwise ECE", evidence, p)


@register("brier", "calibration", CalibrationParams)
def brier(evidence: Evidence, p: CalibrationParams) -> CheckResult:
    """Multiclass Brier score, gated from above."""
    return _evaluate("brier", "Brier score", evidence, p)


@register("nll", "calibration", CalibrationParams)
def nll(evidence: Evidence, p: CalibrationParams) -> CheckResult:
    """Negative log-likelihood of the true class, gated from above."""
    return _evaluate("nll", "NLL", evidence, p)
