"""Robustness family: does the model survive realistic corruption and small adversarial noise?

Corruption checks read one logits view per (perturbation, severity) the suite lists, each
made by `qa.perturb.apply` on the decoded [0, 1] images; the adversarial check reads views
of kind "adversarial" computed with `qa.adversarial.attack`. Accuracies are point estimates.
Every corruption result carries details["curves"]: {perturbation: [{"severity", "accuracy"},
...]} (with "baseline_accuracy" where the baseline was run) for the report's curves.
"""

from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import AfterValidator, Field, model_validator

from qa.adversarial import Attack
from qa.checks import CheckParams, CheckResult, gate, register
from qa.evidence import CLEAN, Evidence, View
from qa.metrics import robustness as rob
from qa.perturb import MCE_DEFAULT, SEVERITIES, check_name

PerturbationName = Annotated[str, AfterValidator(check_name)]
Severity = Annotated[int, Field(ge=1, le=5)]
BASELINE_CLEAN = View(model="baseline")
_NAMES_DOC = "perturbation names (see qa.perturb; user-registered ones too)"
_SEVERITIES_DOC = "severities from 1 to 5 to run each perturbation at"


class CorruptionParams(CheckParams):
    """Common to the corruption checks: which perturbations, at which severities."""

    perturbations: list[PerturbationName] = Field(min_length=1, description=_NAMES_DOC)
    severities: list[Severity] = Field(list(SEVERITIES), min_length=1, description=_SEVERITIES_DOC)

    @model_validator(mode="after")
    def _distinct(self):
        for key in ("perturbations", "severities"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"`{key}` lists a value twice: {values}")
        return self

    def corruption_views(self, model: str = "candidate") -> list[View]:
        """One logits view per (perturbation, severity) of `model`."""
        return [
            View(model=model, perturbation=name, severity=s)
            for name in self.perturbations
            for s in self.severities
        ]

    def views(self) -> list[View]:
        """Clean logits and the logits under every listed perturbation and severity."""
        return [CLEAN, *self.corruption_views()]


class CorruptionAccuracyParams(CorruptionParams):
    """Gate accuracy under each corruption from below, and/or its drop from clean accuracy."""

    min: float | None = Field(None, ge=0, le=1, description="smallest acceptable accuracy")
    max_relative_drop: float | None = Field(
        None, ge=0, le=1, description="largest acceptable (clean - corrupted) / clean accuracy"
    )
    example: ClassVar[dict] = {"perturbations": ["gaussian_noise"], "min": 0.5}

    @model_validator(mode="after")
    def _some_gate(self):
        if self.min is None and self.max_relative_drop is None:
            raise ValueError("give `min`, `max_relative_drop` or both")
        return self


class MeanCorruptionErrorParams(CorruptionParams):
    """Gate the mean corruption error (mCE) or relative mCE from above."""

    perturbations: list[PerturbationName] = Field(
        list(MCE_DEFAULT),
        min_length=1,
        description=_NAMES_DOC + "; default: the 12 of the paper's 15 that qa implements",
    )
    reference: Literal["auto", "baseline", "clean"] = Field(
        "auto",
        description="normalise by the baseline's errors, by the candidate's clean error, or "
        "auto: the baseline when the suite has one",
    )
    metric: Literal["mce", "relative_mce"] = Field("mce", description="which mean to gate")
    max: float = Field(
        ge=0, description="largest acceptable value (1.0: as robust as the reference)"
    )
    example: ClassVar[dict] = {"max": 1.2}

    def views(self) -> list[View]:
        """The corruption views, and the baseline's too unless the reference is clean."""
        views = super().views()
        if self.reference != "clean":
            views += [BASELINE_CLEAN, *self.corruption_views("baseline")]
        return views


class PredictionConsistencyParams(CorruptionParams):
    """Gate from above how often the top-1 prediction changes under each corruption."""

    max: float = Field(ge=0, le=1, description="largest acceptable flip rate")
    example: ClassVar[dict] = {"perturbations": ["gaussian_noise"], "max": 0.9}


class AdversarialAccuracyParams(CheckParams):
    """Gate accuracy under L-inf FGSM and/or PGD attacks from below."""

    attacks: list[Literal["fgsm", "pgd"]] = Field(
        ["fgsm", "pgd"], min_length=1, description="attacks to run"
    )
    eps: float = Field(2 / 255, gt=0, le=1, description="L-inf radius, in units of `space`")
    steps: int = Field(10, ge=1, description="PGD iterations")
    alpha: float | None = Field(None, gt=0, description="PGD step size; default 2.5 * eps / steps")
    space: Literal["pixel", "normalized"] = Field(
        "pixel", description="eps on the [0, 1] pixel scale or on the model's normalised input"
    )
    min: float = Field(ge=0, le=1, description="smallest acceptable accuracy under each attack")
    example: ClassVar[dict] = {"min": 0.1}

    def attack_specs(self) -> list[Attack]:
        """The attacks, with PGD's default step size filled in."""
        alpha = self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps
        return [
            Attack("fgsm", self.eps, space=self.space)
            if method == "fgsm"
            else Attack("pgd", self.eps, self.steps, alpha, self.space)
            for method in dict.fromkeys(self.attacks)
        ]

    def views(self) -> list[View]:
        """Clean logits and one adversarial view per attack (its parameters in the name)."""
        return [CLEAN] + [
            View(kind="adversarial", perturbation=a.view_name()) for a in self.attack_specs()
        ]


def _read(evidence: Evidence, views: list[View]) -> dict[View, np.ndarray]:
    """The logits of `views`; ValueError naming a view whose logits are not all finite."""
    out = {}
    for view in views:
        logits = evidence.logits(view)
        bad = int((~np.isfinite(logits)).any(axis=1).sum())
        if bad:
            raise ValueError(f"{bad} samples have NaN or infinite logits in {view.label()}")
        out[view] = logits
    return out


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return 1 - rob.error_rate(logits, labels)


def _curves(p: CorruptionParams, logits: dict, labels: np.ndarray, baseline: bool) -> dict:
    """{perturbation: [{"severity", "accuracy"(, "baseline_accuracy")}]} for the report."""
    curves = {}
    for name in p.perturbations:
        points = []
        for s in p.severities:
            cand = logits[View(perturbation=name, severity=s)]
            point = {"severity": s, "accuracy": _accuracy(cand, labels)}
            if baseline:
                base = logits[View(model="baseline", perturbation=name, severity=s)]
                point["baseline_accuracy"] = _accuracy(base, labels)
            points.append(point)
        curves[name] = points
    return curves


def _combine(results: list[CheckResult]) -> CheckResult:
    """One result from several gates on the same metrics: the worst status decides."""
    rank = {"error": 0, "fail": 1, "pass": 2}
    deciding = min(results, key=lambda r: rank[r.status])
    message = "; ".join(r.message for r in results)
    return CheckResult(deciding.status, message, deciding.metrics, deciding.threshold)


@register("corruption_accuracy", "robustness", CorruptionAccuracyParams)
def corruption_accuracy(evidence: Evidence, p: CorruptionAccuracyParams) -> CheckResult:
    """Accuracy under every listed corruption and severity, and its relative drop from clean."""
    logits = _read(evidence, p.views())
    labels = evidence.labels
    clean = _accuracy(logits[CLEAN], labels)
    rows = []
    for view in p.corruption_views():
        acc = _accuracy(logits[view], labels)
        drop = (clean - acc) / clean if clean > 0 else float("nan")
        row = {"perturbation": view.perturbation, "severity": view.severity}
        rows.append({**row, "accuracy": acc, "relative_drop": drop})
    worst = min(rows, key=lambda r: r["accuracy"])
    dropped = max(rows, key=lambda r: np.nan_to_num(r["relative_drop"], nan=-np.inf))
    metrics = {
        "clean_accuracy": clean,
        "worst_accuracy": worst["accuracy"],
        "worst_accuracy_view": f"{worst['perturbation']} s{worst['severity']}",
        "worst_relative_drop": dropped["relative_drop"],
        "worst_relative_drop_view": f"{dropped['perturbation']} s{dropped['severity']}",
        "n": len(labels),
    }
    results = []
    if p.min is not None:
        what = f"worst accuracy ({metrics['worst_accuracy_view']})"
        results.append(gate("worst_accuracy", worst["accuracy"], ">=", p.min, metrics, what))
    if p.max_relative_drop is not None:
        what = f"worst relative accuracy drop ({metrics['worst_relative_drop_view']})"
        value = dropped["relative_drop"]
        results.append(gate("worst_relative_drop", value, "<=", p.max_relative_drop, metrics, what))
    result = _combine(results)
    result.details = {"views": rows, "curves": _curves(p, logits, labels, baseline=False)}
    return result


def _reference(evidence: Evidence, p: MeanCorruptionErrorParams) -> str | CheckResult:
    """ "baseline" or "clean": what normalises the errors; an error result if it cannot be had."""
    has_baseline = BASELINE_CLEAN in evidence.arrays
    if p.reference == "baseline" and not has_baseline:
        return CheckResult(
            "error",
            "reference: baseline, but the run has no baseline logits; add `baseline:` to the "
            "suite or pass --baseline (or use reference: clean)",
        )
    return "baseline" if has_baseline and p.reference != "clean" else "clean"


@register("mean_corruption_error", "robustness", MeanCorruptionErrorParams)
def mean_corruption_error(evidence: Evidence, p: MeanCorruptionErrorParams) -> CheckResult:
    """mCE or relative mCE (Hendrycks & Dietterich 2019), normalised by a baseline or clean error."""
    reference = _reference(evidence, p)
    if isinstance(reference, CheckResult):
        return reference
    use_baseline = reference == "baseline"
    wanted = [CLEAN, *p.corruption_views()]
    if use_baseline:
        wanted += [BASELINE_CLEAN, *p.corruption_views("baseline")]
    logits = _read(evidence, wanted)
    labels = evidence.labels

    def errors(model: str) -> dict[str, list[float]]:
        """Errors by perturbation, in severity order, of `model`."""
        out = {}
        for name in p.perturbations:
            views = [View(model=model, perturbation=name, severity=s) for s in p.severities]
            out[name] = [rob.error_rate(logits[v], labels) for v in views]
        return out

    clean_error = rob.error_rate(logits[CLEAN], labels)
    cand = errors("candidate")
    if use_baseline:
        ref, ref_clean = errors("baseline"), rob.error_rate(logits[BASELINE_CLEAN], labels)
        words = "the baseline's errors"
    else:
        if clean_error == 0:
            return CheckResult(
                "error",
                "the candidate makes no clean errors, so its corruption errors cannot be "
                "normalised by them; give the suite a baseline (reference: baseline)",
            )
        ref, ref_clean = rob.clean_reference(cand, clean_error), 0.0
        words = "the candidate's clean error (no baseline)"
    out = rob.mean_corruption_error(cand, clean_error, ref, ref_clean)
    metrics = {
        "mce": out["mce"],
        "relative_mce": out["relative_mce"],
        "clean_error": clean_error,
        "reference": reference,
        "reference_clean_error": ref_clean,
        "n": len(labels),
    }
    name = "mCE" if p.metric == "mce" else "relative mCE"
    result = gate(p.metric, metrics[p.metric], "<=", p.max, metrics, f"{name} vs {words}")
    result.details = {
        "reference": reference,
        "ce": out["ce"],
        "relative_ce": out["relative_ce"],
        "errors": cand,
        "reference_errors": ref,
        "curves": _curves(p, logits, labels, baseline=use_baseline),
    }
    return result


@register("prediction_consistency", "robustness", PredictionConsistencyParams)
def prediction_consistency(evidence: Evidence, p: PredictionConsistencyParams) -> CheckResult:
    """Rate at which the top-1 prediction flips from the clean one, worst over corruptions."""
    logits = _read(evidence, p.views())
    rows = [
        {"perturbation": v.perturbation, "severity": v.severity, "flip_rate": flip}
        for v in p.corruption_views()
        for flip in [rob.flip_rate(logits[CLEAN], logits[v])]
    ]
    worst = max(rows, key=lambda r: r["flip_rate"])
    metrics = {
        "worst_flip_rate": worst["flip_rate"],
        "worst_flip_rate_view": f"{worst['perturbation']} s{worst['severity']}",
        "mean_flip_rate": float(np.mean([r["flip_rate"] for r in rows])),
        "n": len(evidence.labels),
    }
    what = f"worst flip rate ({metrics['worst_flip_rate_view']})"
    result = gate("worst_flip_rate", worst["flip_rate"], "<=", p.max, metrics, what)
    result.details = {"views": rows, "curves": _curves(p, logits, evidence.labels, baseline=False)}
    return result


@register("adversarial_accuracy", "robustness", AdversarialAccuracyParams)
def adversarial_accuracy(evidence: Evidence, p: AdversarialAccuracyParams) -> CheckResult:
    """Accuracy under L-inf FGSM/PGD attacks of radius eps, worst over the attacks."""
    views = p.views()
    missing = [v.perturbation for v in views[1:] if v not in evidence.arrays]
    if missing:
        return CheckResult(
            "error", f"no adversarial logits for {', '.join(missing)}: the engine did not run them"
        )
    logits = _read(evidence, views)
    labels = evidence.labels
    metrics = {"clean_accuracy": _accuracy(logits[CLEAN], labels)}
    attacks = []
    for spec, view in zip(p.attack_specs(), views[1:], strict=True):
        acc = _accuracy(logits[view], labels)
        metrics[f"{spec.method}_accuracy"] = acc
        attacks.append({"attack": spec.view_name(), "accuracy": acc})
    worst = min(attacks, key=lambda a: a["accuracy"])
    metrics.update(worst_accuracy=worst["accuracy"], eps=p.eps, space=p.space, n=len(labels))
    what = f"accuracy under {worst['attack'].split(':')[0].upper()} (eps={p.eps:g}, {p.space})"
    result = gate("worst_accuracy", worst["accuracy"], ">=", p.min, metrics, what)
    result.details = {"attacks": attacks}
    return result
