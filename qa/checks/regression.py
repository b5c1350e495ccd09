"""Regression family: is the candidate at least as good as the deployed baseline?

Both models are judged on identical views, so every comparison is paired. Each result states
the minimum detectable effect (MDE) for this eval size at the suite's confidence and 80% power,
so a reader learns when the eval set is too small to support the gate that was written (for
accuracy-type deltas qa.metrics.paired.accuracy_mde says how it is found).
"""

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from qa.checks import CheckParams, CheckResult, Stop, finite_logits, gate, register
from qa.checks.paired_evidence import PairedEvidence
from qa.checks.params import Binning, Bins, CorruptionParams, GateOn, Resamples, Seed
from qa.evidence import BASELINE, CLEAN, Evidence, View
from qa.metrics import calibration as cal
from qa.metrics import calibration_bounds as cb
from qa.metrics import paired
from qa.metrics.accuracy import macro_f1
from qa.metrics.intervals import binomial_bounds, bonferroni_level


class RegressionParams(CheckParams):
    """Common to every regression check: it reads the baseline's clean logits too."""

    needs_baseline: ClassVar[bool] = True

    def views(self) -> list[View]:
        """Clean logits of the candidate and of the baseline."""
        return [CLEAN, BASELINE]


class AccuracyRegressionParams(RegressionParams):
    """Gate the paired accuracy (or macro-F1) delta against the baseline."""

    metric: Literal["accuracy", "macro_f1"] = Field("accuracy", description="metric compared")
    tolerance: float = Field(0.0, ge=0, le=1, description="largest acceptable drop")
    gate_on: GateOn = "bound"
    resamples: Resamples = 2000
    seed: Seed = 0
    example: ClassVar[dict] = {"tolerance": 0.01}


@register("accuracy_regression", "regression", AccuracyRegressionParams)
def accuracy_regression(evidence: Evidence, p: AccuracyRegressionParams) -> CheckResult:
    """Paired bootstrap bound of the accuracy or macro-F1 delta against the baseline."""
    pe = PairedEvidence(evidence)
    conf, n = evidence.confidence, len(pe.labels)
    if p.metric == "accuracy":
        cand, base = float(pe.cand_ok.mean()), float(pe.base_ok.mean())
        lower, upper = paired.accuracy_delta_bounds(
            pe.base_ok, pe.cand_ok, conf, p.resamples, p.seed
        )
    else:
        k = len(evidence.class_names)
        cand = macro_f1(pe.labels, pe.cand_pred, k)
        base = macro_f1(pe.labels, pe.base_pred, k)
        lower, upper = paired.macro_f1_delta_bounds(
            pe.labels, pe.base_pred, pe.cand_pred, k, conf, p.resamples, p.seed
        )
    name = "accuracy" if p.metric == "accuracy" else "macro-F1"
    metrics = {
        "measure": name,
        "candidate": cand,
        "baseline": base,
        "delta": cand - base,
        "delta_lower": lower,
        "delta_upper": upper,
        "n": n,
        "baseline_only_correct": pe.worse,
        "candidate_only_correct": pe.better,
        "confidence": conf,
        "mde": pe.mde(conf),
    }
    delta = ("delta", "delta_lower", "delta_upper")
    if p.gate_on == "point":
        return gate("delta", cand - base, ">=", -p.tolerance, metrics, f"{name} delta", delta)
    what = f"{name} delta upper {conf:.0%} bound"
    return gate("delta_upper", upper, ">=", -p.tolerance, metrics, what, delta)


class McNemarParams(RegressionParams):
    """McNemar's exact test on the discordant pairs."""

    alternative: Literal["less", "two-sided"] = Field(
        "less",
        description="'less': one-sided test that the candidate is worse; 'two-sided': the "
        "two-sided p-value (stricter), still failing only a worse candidate",
    )
    example: ClassVar[dict] = {}


@register("mcnemar", "regression", McNemarParams)
def mcnemar(evidence: Evidence, p: McNemarParams) -> CheckResult:
    """McNemar's exact test: fails when the candidate is significantly worse than the baseline.

    Never fails a better candidate: with `two-sided`, a significant difference in the
    candidate's favour passes (its p-value is reported as 1 for the regression question).
    """
    pe = PairedEvidence(evidence)
    alpha = 1.0 - evidence.confidence
    pvalue = paired.mcnemar_exact(pe.worse, pe.better, p.alternative)
    if pe.better >= pe.worse:
        pvalue = 1.0  # a significant difference in the candidate's favour is no regression
    metrics = {
        "p_value": pvalue,
        "alpha": alpha,
        "baseline_only_correct": pe.worse,
        "candidate_only_correct": pe.better,
        "n": len(pe.labels),
        "confidence": evidence.confidence,
        **pe.accuracy_effect(evidence.confidence),
    }
    result = gate("p_value", pvalue, ">=", alpha, metrics, "McNemar p-value")
    result.message += f" (baseline-only correct {pe.worse}, candidate-only correct {pe.better})"
    return result


class FlipParams(RegressionParams):
    """Gate the negative flip rate: samples the baseline got right and the candidate gets wrong."""

    max: float = Field(ge=0, le=1, description="largest acceptable negative flip rate")
    gate_on: GateOn = "bound"
    example: ClassVar[dict] = {"max": 0.05}


@register("negative_flip_rate", "regression", FlipParams)
def negative_flip_rate(evidence: Evidence, p: FlipParams) -> CheckResult:
    """Rate of baseline-correct samples the candidate gets wrong; lists every flipped sample."""
    pe = PairedEvidence(evidence)
    n = len(pe.labels)
    low, high = binomial_bounds(pe.worse, n, evidence.confidence, evidence.interval_method)
    metrics = {
        "negative_flip_rate": pe.worse / n,
        "nfr_low": low,
        "nfr_high": high,
        "negative_flips": pe.worse,
        "positive_flips": pe.better,
        "both_correct": int((pe.base_ok & pe.cand_ok).sum()),
        "both_wrong": int((~pe.base_ok & ~pe.cand_ok).sum()),
        "n": n,
        "confidence": evidence.confidence,
        **pe.accuracy_effect(evidence.confidence),
    }
    flipped = np.flatnonzero(pe.base_ok & ~pe.cand_ok)
    deciding = "negative_flip_rate" if p.gate_on == "point" else "nfr_high"
    what = "negative flip rate" + ("" if p.gate_on == "point" else " upper bound")
    nfr = ("negative_flip_rate", "nfr_low", "nfr_high")
    result = gate(deciding, metrics[deciding], "<=", p.max, metrics, what, nfr)
    result.details = {"flips": pe.flips(evidence, flipped)}
    return result


class PerClassParams(RegressionParams):
    """Per-class recall regressions, Holm-corrected across the classes tested."""

    tolerance: float = Field(
        0.0, ge=0, lt=1, description="largest acceptable recall drop (tested, not eyeballed)"
    )
    classes: list[str] | None = Field(None, description="classes to test (default: all)")
    example: ClassVar[dict] = {}


@register("per_class_regression", "regression", PerClassParams)
def per_class_regression(evidence: Evidence, p: PerClassParams) -> CheckResult:
    """Per-class recall deltas; a class regresses when its drop is significantly beyond tolerance.

    Each class tests H0 "recall drop <= tolerance" (McNemar's exact test at tolerance 0,
    Tango's score test with the tolerance as margin otherwise), Holm-corrected across classes:
    a class whose true drop equals the tolerance is flagged with probability at most 1 - c.
    """
    pe = PairedEvidence(evidence)
    names = evidence.class_names
    unknown = sorted(set(p.classes or []) - set(names))
    if unknown:
        raise Stop("error", f"unknown classes {unknown}; the model's classes are {names}")
    tested = [c for c in names if p.classes is None or c in p.classes]
    rows = []
    for cls in tested:
        mask = pe.labels == names.index(cls)
        worse, better = paired.discordant_counts(pe.base_ok[mask], pe.cand_ok[mask])
        n_k = int(mask.sum())
        base = float(pe.base_ok[mask].mean()) if n_k else float("nan")
        cand = float(pe.cand_ok[mask].mean()) if n_k else float("nan")
        rows.append(
            {
                "class": cls,
                "n": n_k,
                "baseline_recall": base,
                "candidate_recall": cand,
                "delta": cand - base,
                "baseline_only_correct": worse,
                "candidate_only_correct": better,
                "p_value": paired.drop_pvalue(worse, better, n_k, p.tolerance) if n_k else 1.0,
                "mde": pe.mde(evidence.confidence, mask),
            }
        )
    alpha = 1.0 - evidence.confidence
    for row, adjusted in zip(rows, paired.holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
        row["regressed"] = bool(adjusted < alpha)
    regressed = [r["class"] for r in rows if r["regressed"]]
    metrics = {
        "n_regressed": len(regressed),
        "classes_tested": len(rows),
        "alpha": alpha,
        "tolerance": p.tolerance,
        "mde": max((r["mde"] for r in rows), default=float("inf")),
    }
    if rows:  # the class that lost the most recall: its values are the effect a reader sees
        weakest = min(rows, key=lambda r: (r["delta"], r["class"]))
        metrics |= {
            "measure": f"recall of {weakest['class']}",
            "candidate": weakest["candidate_recall"],
            "baseline": weakest["baseline_recall"],
            "delta": weakest["delta"],
        }
    result = gate("n_regressed", len(regressed), "<=", 0, metrics, "classes regressed")
    result.details = {"classes": rows}
    if rows:  # the effect shown is the worst class's, its MDE too (metrics keep the largest)
        result.effect["mde"] = weakest["mde"] if math.isfinite(weakest["mde"]) else None
    if regressed:
        worst = sorted((r for r in rows if r["regressed"]), key=lambda r: r["delta"])
        result.message = "recall regressed for " + ", ".join(
            f"{r['class']} ({r['baseline_recall']:.3f} -> {r['candidate_recall']:.3f}, "
            f"Holm p={r['p_holm']:.3g})"
            for r in worst
        )
    return result


class CalibrationRegressionParams(RegressionParams):
    """Gate the increase of the calibration error against the baseline."""

    max_increase: float = Field(
        0.0, ge=0, le=1, description="largest acceptable increase of the RMS calibration error"
    )
    bins: Bins = 15
    binning: Binning = "width"
    gate_on: GateOn = "bound"
    example: ClassVar[dict] = {"max_increase": 0.02}


@register("calibration_regression", "regression", CalibrationRegressionParams)
def calibration_regression(evidence: Evidence, p: CalibrationRegressionParams) -> CheckResult:
    """Lower bound of the debiased RMS calibration error's increase against the baseline.

    The plug-in ECE is biased upwards by an amount that depends on the confidence profile, so
    a less confident but perfectly calibrated candidate looked worse. The debiased RMS error
    (qa.metrics.calibration_bounds; at least the ECE) is unbiased for both models, and the
    increase is bounded by the candidate's lower bound minus the baseline's upper bound.
    """
    pe = PairedEvidence(evidence)
    conf = evidence.confidence
    cand, base = (
        cb.top_label_groups(cal.softmax(x), pe.labels) for x in (pe.cand_logits, pe.base_logits)
    )
    rms = cb.rms_increase(cand, base, p.bins, p.binning, conf)
    mde = rms.pop("mde")  # an increase smaller than this cannot be shown
    metrics = {**rms, "n": len(pe.labels), "confidence": conf, "mde": mde}
    metrics |= {
        "measure": "RMS calibration error",
        "candidate": rms["candidate_rmsce"],
        "baseline": rms["baseline_rmsce"],
        "delta": rms["increase"],
        "delta_lower": rms["increase_lower"],
        "delta_upper": rms["increase_upper"],
    }
    increase = ("increase", "increase_lower", "increase_upper")
    if p.gate_on == "point":
        what = "RMSCE increase"
        return gate("increase", rms["increase"], "<=", p.max_increase, metrics, what, increase)
    what = f"RMS calibration error increase lower {conf:.0%} bound"
    return gate(
        "increase_lower", rms["increase_lower"], "<=", p.max_increase, metrics, what, increase
    )


class RobustnessRegressionParams(CorruptionParams):
    """Gate each corruption family's accuracy (averaged over severities) against the baseline.

    Perturbations and severities are declared and validated once, by CorruptionParams.
    """

    needs_baseline: ClassVar[bool] = True
    tolerance: float = Field(0.0, ge=0, le=1, description="largest acceptable drop per family")
    resamples: Resamples = 2000
    seed: Seed = 0
    example: ClassVar[dict] = {"perturbations": ["gaussian_noise"], "severities": [1]}

    def views(self) -> list[View]:
        """Every listed (perturbation, severity) for both models."""
        return self.corruption_views("candidate") + self.corruption_views("baseline")


@register("robustness_regression", "regression", RobustnessRegressionParams)
def robustness_regression(evidence: Evidence, p: RobustnessRegressionParams) -> CheckResult:
    """Per corruption family, a paired bound of the accuracy delta (Bonferroni across families)."""
    labels = evidence.labels
    # the family-wise false-alarm rate stays at 1 - confidence across families
    conf = bonferroni_level(evidence.confidence, len(p.perturbations))
    rows = []
    for name in p.perturbations:
        ok = {}
        for model in ("candidate", "baseline"):
            views = [View(model=model, perturbation=name, severity=s) for s in p.severities]
            missing = [v.label() for v in views if v not in evidence.arrays]
            if missing:
                raise Stop("error", f"no evidence for {missing[0]}")
            hits = [finite_logits(evidence, v).argmax(1) == labels for v in views]
            ok[model] = np.mean(hits, axis=0)
        lower, upper = paired.accuracy_delta_bounds(
            ok["baseline"], ok["candidate"], conf, p.resamples, p.seed
        )
        delta = float(ok["candidate"].mean() - ok["baseline"].mean())
        rows.append(
            {
                "perturbation": name,
                "candidate": float(ok["candidate"].mean()),
                "baseline": float(ok["baseline"].mean()),
                "delta": delta,
                "delta_lower": lower,
                "delta_upper": upper,
                "regressed": upper < -p.tolerance,
                "mde": paired.accuracy_mde(ok["baseline"], ok["candidate"], conf),
            }
        )
    worst = min(rows, key=lambda r: r["delta_upper"])
    metrics = {
        "worst_delta_upper": worst["delta_upper"],
        "worst_perturbation": worst["perturbation"],
        "families_regressed": sum(r["regressed"] for r in rows),
        "confidence_per_family": conf,
        "confidence": conf,
        "n": len(labels),
        "mde": max(r["mde"] for r in rows),
        "measure": f"accuracy under {worst['perturbation']}",
        "candidate": worst["candidate"],
        "baseline": worst["baseline"],
        "delta": worst["delta"],
        "delta_lower": worst["delta_lower"],
        "delta_upper": worst["delta_upper"],
    }
    result = gate(
        "worst_delta_upper",
        worst["delta_upper"],
        ">=",
        -p.tolerance,
        metrics,
        f"worst corruption accuracy delta upper bound ({worst['perturbation']})",
        ("delta", "delta_lower", "delta_upper"),
    )
    result.details = {"families": rows}
    return result
