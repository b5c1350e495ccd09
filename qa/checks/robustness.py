"""Robustness family: does the model survive realistic corruption and small adversarial noise?

Corruption checks read one logits view per (perturbation, severity) the suite lists, each
made by `qa.perturb.apply` on the decoded [0, 1] images; the adversarial check reads views
of kind "adversarial" computed with `qa.adversarial.attack`. Every corruption result carries
details["curves"]: {perturbation: [{"severity", "accuracy"}, ...]} (with "baseline_accuracy"
where the baseline's views were computed, by this check or another) and details["clean"]
{"accuracy"(, "baseline_accuracy")}, the curves' start, for the report's figures;
prediction_consistency's curves carry "flip_rate" instead.

Every gate compares a one-sided bound at the suite's confidence c, so a model whose true
value sits exactly on the threshold passes with probability at most 1 - c (`gate_on: point`
compares the point estimate instead; both are always reported). Accuracies and flip rates
get binomial bounds (the suite's interval method), the relative accuracy drop the score
bound of a ratio of paired proportions (clean and corrupted outcomes of the same samples),
the mCE a paired percentile bootstrap over samples, every view of a sample resampled
together. Only Clopper-Pearson holds 1 - c exactly; the others are close to it, as
bench/boundary_robustness.py measures for each gate at its boundary.

Many views need no multiplicity correction for that promise. A check gates its worst view,
so the model's true value is its worst view's. A `min` gate passes only when every view's
lower bound clears the threshold, which needs the worst view's to; with that view's true
value on the threshold this happens with probability at most 1 - c, whatever the other
views do (likewise upper bounds for a `max` gate). A correction would only bound false
fails (one of many bounds falling short by chance): many views make the gate stricter, not
more lenient.
"""

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from qa.adversarial import Attack
from qa.checks import CheckParams, CheckResult, Stop, finite_logits, gate, gated_on, register
from qa.checks.params import CorruptionParams, GateOn, Perturbations, Resamples, Seed
from qa.evidence import BASELINE, CLEAN, Evidence, View
from qa.metrics import robustness as rob
from qa.metrics.intervals import binomial_bounds
from qa.perturb import MCE_DEFAULT


class CorruptionAccuracyParams(CorruptionParams):
    """Gate accuracy under each corruption from below, and/or its drop from clean accuracy."""

    min: float | None = Field(None, ge=0, le=1, description="smallest acceptable accuracy")
    max_relative_drop: float | None = Field(
        None, ge=0, le=1, description="largest acceptable (clean - corrupted) / clean accuracy"
    )
    gate_on: GateOn = "bound"
    example: ClassVar[dict] = {"perturbations": ["gaussian_noise"], "min": 0.5}

    @model_validator(mode="after")
    def _some_gate(self):
        if self.min is None and self.max_relative_drop is None:
            raise ValueError("give `min`, `max_relative_drop` or both")
        return self


class MeanCorruptionErrorParams(CorruptionParams):
    """Gate the mean corruption error (mCE) or relative mCE from above."""

    perturbations: Perturbations = Field(
        list(MCE_DEFAULT),
        description="perturbation names (see qa.perturb; user-registered ones too); "
        "default: the paper's 15 (ImageNet-C without its 4 held-out corruptions)",
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
    gate_on: GateOn = "bound"
    resamples: Resamples = 1000
    seed: Seed = 0
    example: ClassVar[dict] = {"max": 1.2}

    def views(self) -> list[View]:
        """The corruption views, and the baseline's too unless the reference is clean."""
        views = super().views()
        if self.reference != "clean":
            views += [BASELINE, *self.corruption_views("baseline")]
        return views


class PredictionConsistencyParams(CorruptionParams):
    """Gate from above how often the top-1 prediction changes under each corruption."""

    max: float = Field(ge=0, le=1, description="largest acceptable flip rate")
    gate_on: GateOn = "bound"
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
    gate_on: GateOn = "bound"
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
    """The top-1 predictions of `views`, read one view at a time (memory holds one view's
    logits, however many views); Stop naming a view whose logits are not all finite."""
    return {view: finite_logits(evidence, view).argmax(axis=1) for view in views}


def _correct(predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return predicted == np.asarray(labels)


def _accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(_correct(predicted, labels).mean()) if len(labels) else float("nan")


def _proportion(name: str, hits: np.ndarray, evidence: Evidence) -> dict:
    """A proportion's point estimate, its one-sided bounds at the suite's confidence, k and n."""
    k, n = int(np.count_nonzero(hits)), len(hits)
    low, high = binomial_bounds(k, n, evidence.confidence, evidence.interval_method)
    return {name: k / n if n else float("nan"), f"{name}_low": low, f"{name}_high": high, "k": k}


def _gate_worst(
    rows: list[dict],
    name: str,
    op: str,
    limit: float,
    gate_on: str,
    ev: Evidence,
    metrics: dict,
    counted: bool = True,
) -> CheckResult:
    """Gate the worst row's bound (or point) of `name`; its numbers go into `metrics`.

    Rows carry `name`, `name`_low, `name`_high, a "label" and, when `counted` (a binomial
    proportion), its count "k" of metrics["n"]. A row whose compared value is nan counts as
    the worst, so an undefined view errors instead of hiding behind the others.
    """
    key, bound = gated_on(name, op, gate_on, ev.confidence)
    sign = 1 if op == ">=" else -1  # the worst is the smallest value for `min`, largest for `max`
    worst = min(rows, key=lambda r: -np.inf if np.isnan(r[key]) else sign * r[key])
    metrics.update({f"worst_{name}{end}": worst[name + end] for end in ("", "_low", "_high")})
    metrics[f"worst_{name}_view"] = worst["label"]
    words = f"worst {name.replace('_', ' ')} ({worst['label']}){bound}"
    result = gate(f"worst_{key}", worst[key], op, limit, metrics, words)
    if bound and result.status != "error":
        result.message += f"; point estimate {worst[name]:.4f}"
    if counted:
        metrics["k"] = worst["k"]
        result.message += f" ({worst['k']}/{metrics['n']})"
    return result


def _curves(p: CorruptionParams, predicted: dict, labels: np.ndarray, baseline: bool) -> dict:
    """{perturbation: [{"severity", "accuracy"(, "baseline_accuracy")}]} for the report."""
    curves = {}
    for name in p.perturbations:
        points = []
        for s in p.severities:
            cand = predicted[View(perturbation=name, severity=s)]
            point = {"severity": s, "accuracy": _accuracy(cand, labels)}
            if baseline:
                base = predicted[View(model="baseline", perturbation=name, severity=s)]
                point["baseline_accuracy"] = _accuracy(base, labels)
            points.append(point)
        curves[name] = points
    return curves


def _clean(predicted: dict, labels: np.ndarray, baseline: bool) -> dict:
    """{"accuracy"(, "baseline_accuracy")} on the clean eval split: where the curves start."""
    out = {"accuracy": _accuracy(predicted[CLEAN], labels)}
    if baseline:
        out["baseline_accuracy"] = _accuracy(predicted[BASELINE], labels)
    return out


def _combine(results: list[CheckResult]) -> CheckResult:
    """One result from several gates on the same metrics: the worst status decides."""
    rank = {"error": 0, "fail": 1, "pass": 2}
    deciding = min(results, key=lambda r: rank[r.status])
    message = "; ".join(r.message for r in results)
    return CheckResult(
        deciding.status, message, deciding.metrics, deciding.threshold, effect=deciding.effect
    )


@register("corruption_accuracy", "robustness", CorruptionAccuracyParams)
def corruption_accuracy(evidence: Evidence, p: CorruptionAccuracyParams) -> CheckResult:
    """Accuracy under every listed corruption and severity, and its relative drop from clean."""
    # the baseline's curve costs no inference: it is drawn when another check computed its views
    baseline = [BASELINE, *p.corruption_views("baseline")]
    with_baseline = all(v in evidence.arrays for v in baseline)
    predicted = _read(evidence, p.views() + (baseline if with_baseline else []))
    labels = evidence.labels
    clean = _correct(predicted[CLEAN], labels)
    clean_acc = float(clean.mean()) if len(labels) else float("nan")
    rows = []
    for view in p.corruption_views():
        hits = _correct(predicted[view], labels)
        row = {"perturbation": view.perturbation, "severity": view.severity, "label": view.name()}
        row |= _proportion("accuracy", hits, evidence)
        row["relative_drop"] = (
            (clean_acc - row["accuracy"]) / clean_acc if clean_acc > 0 else np.nan
        )
        if p.max_relative_drop is not None:
            low, high = rob.relative_drop_bounds(clean, hits, evidence.confidence)
            row |= {"relative_drop_low": low, "relative_drop_high": high}
        rows.append(row)
    metrics = {
        "clean_accuracy": clean_acc,
        "n": len(labels),
        "confidence": evidence.confidence,
        "interval": evidence.interval_method,
    }
    results = []
    if p.min is not None:
        results.append(_gate_worst(rows, "accuracy", ">=", p.min, p.gate_on, evidence, metrics))
    if p.max_relative_drop is not None:
        metrics["drop_interval"] = "score interval of a ratio of paired proportions"
        limit = p.max_relative_drop
        drop = _gate_worst(rows, "relative_drop", "<=", limit, p.gate_on, evidence, metrics, False)
        results.append(drop)
    result = _combine(results)
    result.details = {
        "views": rows,
        "curves": _curves(p, predicted, labels, with_baseline),
        "clean": _clean(predicted, labels, with_baseline),
    }
    return result


def _reference(evidence: Evidence, p: MeanCorruptionErrorParams) -> str:
    """ "baseline" or "clean": what normalises the errors; Stop if it cannot be had."""
    has_baseline = BASELINE in evidence.arrays
    if p.reference == "baseline" and not has_baseline:
        raise Stop(
            "error",
            "reference: baseline, but the run has no baseline logits; add `baseline:` to the "
            "suite or pass --baseline (or use reference: clean)",
        )
    return "baseline" if has_baseline and p.reference != "clean" else "clean"


def _errors(predicted: dict, labels: np.ndarray, p: CorruptionParams, model: str) -> dict:
    """Per-sample 0/1 errors of `model`, (severities, n) by perturbation."""
    return {
        f: np.array(
            [
                ~_correct(predicted[View(model=model, perturbation=f, severity=s)], labels)
                for s in p.severities
            ]
        )
        for f in p.perturbations
    }


@register("mean_corruption_error", "robustness", MeanCorruptionErrorParams)
def mean_corruption_error(evidence: Evidence, p: MeanCorruptionErrorParams) -> CheckResult:
    """mCE or relative mCE (Hendrycks & Dietterich 2019), normalised by a baseline or clean error."""
    reference = _reference(evidence, p)
    use_baseline = reference == "baseline"
    wanted = [CLEAN, *p.corruption_views()]
    if use_baseline:
        wanted += [BASELINE, *p.corruption_views("baseline")]
    predicted = _read(evidence, wanted)
    labels = evidence.labels
    clean = ~_correct(predicted[CLEAN], labels)
    cand = _errors(predicted, labels, p, "candidate")
    if use_baseline:
        ref = _errors(predicted, labels, p, "baseline")
        ref_clean = ~_correct(predicted[BASELINE], labels)
        words = "the baseline's errors"
    elif not clean.any():
        raise Stop(
            "error",
            "the candidate makes no clean errors, so its corruption errors cannot be "
            "normalised by them; give the suite a baseline (reference: baseline)",
        )
    else:
        # the clean reference: the candidate's own clean errors, which the bootstrap resamples
        ref = {f: np.broadcast_to(clean, e.shape) for f, e in cand.items()}
        ref_clean = np.zeros_like(clean)
        words = "the candidate's clean error (no baseline)"
    rates = {f: e.mean(axis=1).tolist() for f, e in cand.items()}
    ref_rates = {f: e.mean(axis=1).tolist() for f, e in ref.items()}
    clean_error, ref_clean_error = float(clean.mean()), float(ref_clean.mean())
    out = rob.mean_corruption_error(rates, clean_error, ref_rates, ref_clean_error)
    terms = rob.corruption_error_terms(cand, clean, ref, ref_clean, p.metric == "relative_mce")
    low, high = rob.mce_bounds(*terms, evidence.confidence, p.resamples, p.seed)
    metrics = {
        "mce": out["mce"],
        "relative_mce": out["relative_mce"],
        f"{p.metric}_low": low,
        f"{p.metric}_high": high,
        "clean_error": clean_error,
        "reference": reference,
        "reference_clean_error": ref_clean_error,
        "n": len(labels),
        "confidence": evidence.confidence,
        "interval": f"paired percentile bootstrap, {p.resamples} resamples, seed {p.seed}",
    }
    deciding, bound = gated_on(p.metric, "<=", p.gate_on, evidence.confidence)
    what = f"{'mCE' if p.metric == 'mce' else 'relative mCE'} vs {words}{bound}"
    result = gate(deciding, metrics[deciding], "<=", p.max, metrics, what)
    if bound and result.status != "error":
        result.message += f"; point estimate {metrics[p.metric]:.4f}"
    result.details = {
        "reference": reference,
        "ce": out["ce"],
        "relative_ce": out["relative_ce"],
        "errors": rates,
        "reference_errors": ref_rates,
        "curves": _curves(p, predicted, labels, baseline=use_baseline),
        "clean": _clean(predicted, labels, use_baseline),
    }
    return result


@register("prediction_consistency", "robustness", PredictionConsistencyParams)
def prediction_consistency(evidence: Evidence, p: PredictionConsistencyParams) -> CheckResult:
    """Rate at which the top-1 prediction flips from the clean one, worst over corruptions."""
    predicted = _read(evidence, p.views())
    clean = predicted[CLEAN]
    rows = []
    for v in p.corruption_views():
        row = {"perturbation": v.perturbation, "severity": v.severity, "label": v.name()}
        rows.append(row | _proportion("flip_rate", predicted[v] != clean, evidence))
    metrics = {
        "mean_flip_rate": float(np.mean([r["flip_rate"] for r in rows])),
        "n": len(evidence.labels),
        "confidence": evidence.confidence,
        "interval": evidence.interval_method,
    }
    result = _gate_worst(rows, "flip_rate", "<=", p.max, p.gate_on, evidence, metrics)
    curves = {name: [] for name in p.perturbations}
    for r in rows:
        curves[r["perturbation"]].append({"severity": r["severity"], "flip_rate": r["flip_rate"]})
    result.details = {"views": rows, "curves": curves}
    return result


@register("adversarial_accuracy", "robustness", AdversarialAccuracyParams)
def adversarial_accuracy(evidence: Evidence, p: AdversarialAccuracyParams) -> CheckResult:
    """Accuracy under L-inf FGSM/PGD attacks of radius eps, worst over the attacks."""
    views = p.views()
    missing = [v.perturbation for v in views[1:] if v not in evidence.arrays]
    if missing:
        raise Stop(
            "error", f"no adversarial logits for {', '.join(missing)}: the engine did not run them"
        )
    predicted = _read(evidence, views)
    labels = evidence.labels
    metrics = {"clean_accuracy": _accuracy(predicted[CLEAN], labels)}
    attacks = []
    for spec, view in zip(p.attack_specs(), views[1:], strict=True):
        row = _proportion("accuracy", _correct(predicted[view], labels), evidence)
        metrics |= {f"{spec.method}_{key}": row[key] for key in ("accuracy", "accuracy_low")}
        label = f"{spec.method.upper()}, eps={p.eps:g}, {p.space}"
        attacks.append({"attack": spec.view_name(), "label": label, **row})
    metrics |= {
        "eps": p.eps,
        "space": p.space,
        "n": len(labels),
        "confidence": evidence.confidence,
        "interval": evidence.interval_method,
    }
    result = _gate_worst(attacks, "accuracy", ">=", p.min, p.gate_on, evidence, metrics)
    result.details = {"attacks": attacks}
    return result
