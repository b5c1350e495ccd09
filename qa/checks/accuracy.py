"""Accuracy family: is the model good enough on the eval data?

Every proportion (top-1, top-k, per-class recall, confusion rate) comes with one-sided
binomial bounds at the suite's confidence c (the ends of the two-sided 2c - 1 interval), by
the suite's method (`defaults.interval`, carried to the checks as `evidence.interval_method`).
By default a `min` gate compares the lower bound and a `max` gate the upper bound, so a model
whose true value sits on the threshold passes with probability at most 1 - c; `gate_on:
point` compares the point estimate instead. Macro-F1 is not a proportion: its bounds come
from a seeded percentile bootstrap over samples (scipy.stats.bootstrap). A per-class gate
passes only when every class's bound clears the threshold, so a worst class sitting on it
passes with probability at most 1 - c too; no multiplicity correction is needed for that.
Metrics use binomial notation: k of n samples.
"""

import difflib
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from qa.checks import CheckParams, CheckResult, Stop, finite_logits, gate, gated_on, register
from qa.checks.params import GateOn, Resamples, Seed
from qa.evidence import Evidence
from qa.metrics import accuracy as acc
from qa.metrics.intervals import binomial_bounds

MAX_LISTED = 10  # classes named in one message; the rest are in the details


class Top1Params(CheckParams):
    """Gate top-1 accuracy from below."""

    min: float = Field(ge=0, le=1, description="smallest acceptable accuracy")
    gate_on: GateOn = "bound"
    example: ClassVar[dict] = {"min": 0.5}


class TopkParams(CheckParams):
    """Gate top-k accuracy (true class among the k highest logits) from below."""

    k: int = Field(ge=1, description="how many of the highest-scoring classes count as a hit")
    min: float = Field(ge=0, le=1, description="smallest acceptable top-k accuracy")
    gate_on: GateOn = "bound"
    example: ClassVar[dict] = {"k": 2, "min": 0.5}


class PerClassRecallParams(CheckParams):
    """Gate the recall of every listed class from below."""

    min: float = Field(ge=0, le=1, description="smallest acceptable recall of each class")
    classes: Literal["all"] | list[str] = Field(
        "all", min_length=1, description="class names to gate, or 'all'"
    )
    gate_on: GateOn = "bound"
    example: ClassVar[dict] = {"min": 0.2}


class MacroF1Params(CheckParams):
    """Gate macro-F1 from below, on its bootstrap lower bound or its point estimate."""

    min: float = Field(ge=0, le=1, description="smallest acceptable macro-F1")
    gate_on: GateOn = "bound"
    resamples: Resamples = 1000
    seed: Seed = 0
    example: ClassVar[dict] = {"min": 0.2}


class ConfusionRateParams(CheckParams):
    """Gate from above how often samples of one class are predicted as another."""

    true: str = Field(min_length=1, description="the true class name")
    predicted: str = Field(min_length=1, description="the class it must not be mistaken for")
    max: float = Field(ge=0, le=1, description="largest acceptable rate")
    gate_on: GateOn = "bound"
    example: ClassVar[dict] = {"true": "0", "predicted": "1", "max": 0.5}

    @model_validator(mode="after")
    def _distinct(self):
        if self.true == self.predicted:
            raise ValueError(f"`true` and `predicted` must differ, both are {self.true!r}")
        return self


def _clean_logits(evidence: Evidence):
    """The clean logits; Stop when there is nothing sound to judge."""
    logits = finite_logits(evidence)
    if len(evidence.labels) == 0:
        raise Stop("error", "no eval samples to judge")
    return logits


def _class_indices(evidence: Evidence, wanted: list[str]) -> list[int]:
    """Indices of the named classes; Stop naming the first unknown one and the valid ones."""
    names = evidence.class_names
    unknown = [c for c in wanted if c not in names]
    if not unknown:
        return [names.index(c) for c in wanted]
    near = difflib.get_close_matches(unknown[0], names, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    listed = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    raise Stop("error", f"unknown class {unknown[0]!r}{hint}; the model's classes are {listed}")


def _proportion(name: str, k: int, n: int, evidence: Evidence) -> dict:
    """The metrics of one proportion: point, interval, counts, and how the interval was made."""
    low, high = binomial_bounds(k, n, evidence.confidence, evidence.interval_method)
    return {
        name: k / n if n else float("nan"),
        f"{name}_low": low,
        f"{name}_high": high,
        "k": k,
        "n": n,
        "confidence": evidence.confidence,
        "interval": evidence.interval_method,
    }


def _gate_proportion(name: str, what: str, metrics: dict, p, op: str, limit: float):
    deciding, words = gated_on(name, op, p.gate_on, metrics["confidence"])
    result = gate(deciding, metrics[deciding], op, limit, metrics, what + words)
    result.message += f" ({metrics['k']}/{metrics['n']})"
    return result


@register("top1_accuracy", "accuracy", Top1Params)
def top1_accuracy(evidence: Evidence, p: Top1Params) -> CheckResult:
    """Top-1 accuracy with a binomial interval, gated from below."""
    logits = _clean_logits(evidence)
    k = int(acc.topk_correct(logits, evidence.labels, 1).sum())
    metrics = _proportion("accuracy", k, len(evidence.labels), evidence)
    return _gate_proportion("accuracy", "top-1 accuracy", metrics, p, ">=", p.min)


@register("topk_accuracy", "accuracy", TopkParams)
def topk_accuracy(evidence: Evidence, p: TopkParams) -> CheckResult:
    """Top-k accuracy with a binomial interval, gated from below."""
    logits = _clean_logits(evidence)
    n_classes = len(evidence.class_names)
    if p.k >= n_classes:
        raise Stop(
            "error", f"k={p.k} but the model has {n_classes} classes: every sample would count"
        )
    hits = int(acc.topk_correct(logits, evidence.labels, p.k).sum())
    metrics = _proportion("accuracy", hits, len(evidence.labels), evidence)
    metrics["top_k"] = p.k
    return _gate_proportion("accuracy", f"top-{p.k} accuracy", metrics, p, ">=", p.min)


@register("per_class_recall", "accuracy", PerClassRecallParams)
def per_class_recall(evidence: Evidence, p: PerClassRecallParams) -> CheckResult:
    """Recall of each class with its own binomial interval; fails naming the classes below."""
    logits = _clean_logits(evidence)
    names = evidence.class_names
    indices = _class_indices(evidence, names if p.classes == "all" else p.classes)
    _, correct, support = acc.per_class_recall(evidence.labels, acc.predictions(logits), len(names))
    empty = [names[i] for i in indices if support[i] == 0]
    if empty:
        raise Stop("error", f"no eval samples of class {', '.join(empty)}: cannot judge")
    key, bound = gated_on("recall", ">=", p.gate_on, evidence.confidence)
    rows = []
    for i in indices:
        row = _proportion("recall", int(correct[i]), int(support[i]), evidence)
        row["class"] = names[i]
        row["passed"] = bool(row[key] >= p.min)
        rows.append(row)
    rows.sort(key=lambda r: r[key])
    worst = rows[0]
    metrics = {f"worst_{name}": worst[name] for name in ("recall", "recall_low", "recall_high")}
    metrics |= {
        "worst_class": worst["class"],
        "k": worst["k"],
        "n": worst["n"],
        "classes_tested": len(rows),
        "classes_below": sum(not r["passed"] for r in rows),
        "confidence": evidence.confidence,
        "interval": evidence.interval_method,
    }
    words = f"recall of worst class {worst['class']}{bound}"
    result = gate(f"worst_{key}", worst[key], ">=", p.min, metrics, words)
    result.details = {"classes": rows}
    below = [r for r in rows if not r["passed"]]
    if result.status == "fail":
        listed = ", ".join(
            f"{r['class']} {r[key]:.3f} ({r['k']}/{r['n']})" for r in below[:MAX_LISTED]
        )
        more = f" and {len(below) - MAX_LISTED} more" if len(below) > MAX_LISTED else ""
        result.message = (
            f"recall{bound} below {p.min:g} for {len(below)} of {len(rows)} classes: {listed}{more}"
        )
    return result


@register("macro_f1", "accuracy", MacroF1Params)
def macro_f1(evidence: Evidence, p: MacroF1Params) -> CheckResult:
    """Macro-F1 with a seeded percentile-bootstrap interval, gated from below."""
    logits = _clean_logits(evidence)
    labels, pred = evidence.labels, acc.predictions(logits)
    n_classes = len(evidence.class_names)
    low, high = acc.bootstrap_macro_f1(
        labels, pred, n_classes, evidence.confidence, p.resamples, p.seed
    )
    metrics = {
        "macro_f1": acc.macro_f1(labels, pred, n_classes),
        "macro_f1_low": low,
        "macro_f1_high": high,
        "n": len(labels),
        "confidence": evidence.confidence,
        "interval": f"percentile bootstrap, {p.resamples} resamples, seed {p.seed}",
    }
    deciding, words = gated_on("macro_f1", ">=", p.gate_on, evidence.confidence)
    return gate(deciding, metrics[deciding], ">=", p.min, metrics, "macro-F1" + words)


@register("confusion_rate", "accuracy", ConfusionRateParams)
def confusion_rate(evidence: Evidence, p: ConfusionRateParams) -> CheckResult:
    """Rate of samples of class `true` predicted as `predicted`, gated from above."""
    logits = _clean_logits(evidence)
    indices = _class_indices(evidence, [p.true, p.predicted])
    _, k, n = acc.confusion_rate(evidence.labels, acc.predictions(logits), *indices)
    if n == 0:
        raise Stop("error", f"no eval samples of class {p.true!r}: cannot judge")
    metrics = _proportion("confusion_rate", k, n, evidence)
    what = f"rate of {p.true} predicted as {p.predicted}"
    return _gate_proportion("confusion_rate", what, metrics, p, "<=", p.max)
