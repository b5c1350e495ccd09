"""The check registry: every check kind registers here by name, with a typed parameter schema.

One way to write a check, at module level in a family module:

    @register("top1_accuracy", "accuracy", Top1Params)
    def top1_accuracy(evidence: Evidence, p: Top1Params) -> CheckResult:
        ...  # a docstring first: its first line is the kind's summary in `qa checks`

A check is a pure function of evidence. It returns a CheckResult when it has judged (most
through `gate`); when it cannot judge (no sound evidence) or does not apply, it, or any helper
it calls, raises `Stop(status, message)`, which `CheckKind.run` turns into that result. Its
parameter model (pydantic, extra="forbid"; shared keys declared once in qa.checks.params) is
what `qa validate` checks and what `qa checks` lists; its `views()` tells the engine what to
compute, and its ClassVar flags what else the layers around it must do. Families live in
sibling modules, imported by `load_all()`; registering a name twice is an error.
"""

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from qa.checks.effect import effect
from qa.evidence import CLEAN, Evidence, View

STATUSES = ("pass", "fail", "warn", "error", "skip")  # every status a check outcome can have
Status = Literal[STATUSES]
# the modules whose kinds load_all registers; a family may span several (data: data, leakage,
# labels; regression: regression, agreement), and qa.checks.params, the shared parameter types,
# registers none
FAMILY_MODULES = (
    "qa.checks.accuracy",
    "qa.checks.agreement",
    "qa.checks.calibration",
    "qa.checks.data",
    "qa.checks.leakage",
    "qa.checks.labels",
    "qa.checks.regression",
    "qa.checks.robustness",
    "qa.checks.slice_gap",
)


class CheckParams(BaseModel):
    """Base of every check's parameters: unknown keys are errors, never silently ignored.

    Every kind's parameter class defines `example: ClassVar[dict]`, minimal valid parameters:
    `qa checks` shows it and the registry contract tests run every kind with it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    needs_baseline: ClassVar[bool] = False  # the suite needs a baseline model for this kind
    # the kind reports its split's undecodable files, so inference leaves them out (qa.profile_views)
    reports_undecodable: ClassVar[bool] = False
    # the kind's failing paths are image files a report shows as thumbnails (qa.thumbnails)
    shows_thumbnails: ClassVar[bool] = False
    example: ClassVar[dict]

    def views(self) -> list[View]:
        """The views this check reads; most read the candidate's clean logits."""
        return [CLEAN]


@dataclass
class CheckResult:
    """The outcome of one check: every number it compared, so a reader can redo the decision.

    `threshold` is {"metric": name in metrics, "op": ">=" or "<=", "value": number} or None;
    `effect` (qa.checks.effect) the estimate, interval and regression facts of a gate, or {};
    `slices` a row per slice of a per-slice gate (qa.slicing), None for any other check.
    """

    status: Status
    message: str
    metrics: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    effect: dict[str, Any] = field(default_factory=dict)
    slices: list[dict[str, Any]] | None = None


class Stop(Exception):
    """Ends a check early with `status` and `message`, from the check or any helper it calls.

    "error": there is nothing sound to judge (no samples, non-finite logits, an unknown class);
    "skip": the check does not apply (the suite has no such split). Never a pass or a fail:
    those are judgements, which a check returns.
    """

    def __init__(self, status: Literal["error", "skip"], message: str):
        if status not in ("error", "skip"):
            raise ValueError(f"a check stops with 'error' or 'skip', not {status!r}")
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class CheckKind:
    """A registered check kind."""

    kind: str
    family: str
    params: type[CheckParams]
    fn: Callable[[Evidence, Any], CheckResult]

    @property
    def summary(self) -> str:
        """One line of meaning, from the check function's docstring."""
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    def run(self, evidence: Evidence, params: CheckParams) -> CheckResult:
        """The check's result on `evidence`; a Stop raised inside becomes its status and message."""
        try:
            return self.fn(evidence, params)
        except Stop as stop:
            return CheckResult(stop.status, stop.message)


REGISTRY: dict[str, CheckKind] = {}


def register(kind: str, family: str, params: type[CheckParams]):
    """Decorator: register `fn` as check `kind` of `family` taking `params`; returns `fn`."""

    def decorate(fn):
        if kind in REGISTRY:
            raise ValueError(f"check kind {kind!r} is registered twice")
        REGISTRY[kind] = CheckKind(kind, family, params, fn)
        return fn

    return decorate


def load_all() -> dict[str, CheckKind]:
    """Import every family module so that all check kinds are registered; return the registry."""
    for name in FAMILY_MODULES:
        importlib.import_module(name)
    return REGISTRY


# The module registering each of qa's kinds, so that a suite imports only its own kinds'
# families (a warm run of accuracy gates need not import the robustness family);
# tests/test_registry_contract.py holds it equal to what load_all registers.
KIND_MODULES = {
    **dict.fromkeys(
        ("top1_accuracy", "topk_accuracy", "per_class_recall", "macro_f1", "confusion_rate"),
        "qa.checks.accuracy",
    ),
    "prediction_agreement": "qa.checks.agreement",
    **dict.fromkeys(("ece", "mce", "classwise_ece", "brier", "nll"), "qa.checks.calibration"),
    **dict.fromkeys(
        (
            "label_set",
            "min_samples_per_class",
            "class_balance",
            "image_size",
            "decodable",
            "exact_duplicates",
            "near_duplicates",
            "expectation",
        ),
        "qa.checks.data",
    ),
    **dict.fromkeys(("leakage", "near_leakage", "label_drift", "pixel_drift"), "qa.checks.leakage"),
    "label_issues": "qa.checks.labels",
    **dict.fromkeys(
        (
            "accuracy_regression",
            "mcnemar",
            "negative_flip_rate",
            "per_class_regression",
            "calibration_regression",
            "robustness_regression",
        ),
        "qa.checks.regression",
    ),
    **dict.fromkeys(
        (
            "corruption_accuracy",
            "mean_corruption_error",
            "prediction_consistency",
            "adversarial_accuracy",
        ),
        "qa.checks.robustness",
    ),
    "slice_gap": "qa.checks.slice_gap",
}


def load_kinds(kinds) -> dict[str, CheckKind]:
    """Import the family modules of `kinds` (every family when one is not a kind of qa's: a
    plugin's, already registered, or a mistake, whose message lists every kind); return the
    registry."""
    kinds = list(kinds)
    if not all(isinstance(k, str) and (k in KIND_MODULES or k in REGISTRY) for k in kinds):
        return load_all()
    for name in sorted({KIND_MODULES[k] for k in kinds if k in KIND_MODULES}):
        importlib.import_module(name)
    return REGISTRY


def finite_logits(evidence: Evidence, view: View = CLEAN) -> np.ndarray:
    """The logits of `view`; Stop("error") when some sample's are NaN or infinite."""
    logits = evidence.logits(view)
    bad = int((~np.isfinite(logits)).any(axis=1).sum())
    if bad:
        where = "" if view == CLEAN else f" in {view.label()}"
        raise Stop("error", f"{bad} of {len(logits)} samples have NaN or infinite logits{where}")
    return logits


def compare(value: float, op: str, threshold: float) -> bool | None:
    """Apply a gate comparison; None when the value is NaN or infinite (never a silent pass)."""
    if value is None or not math.isfinite(value):
        return None
    if op == ">=":
        return value >= threshold
    if op == "<=":
        return value <= threshold
    raise ValueError(f"unknown comparison {op!r}")


def gated_on(name: str, op: str, gate_on: str, confidence: float) -> tuple[str, str]:
    """The metric a gate on `name` compares, and the words saying so (see qa.checks.params).

    `gate_on: bound` compares `name`_low for a `>=` gate (" lower 95% bound") and `name`_high
    for a `<=` gate (" upper 95% bound"); `point` compares `name` itself, with no words.
    """
    if gate_on == "point":
        return name, ""
    side, end = ("lower", "_low") if op == ">=" else ("upper", "_high")
    return name + end, f" {side} {confidence * 100:g}% bound"


def gate(
    metric: str,
    value: float,
    op: str,
    threshold: float,
    metrics: dict,
    what: str,
    estimate: tuple[str, str | None, str | None] | None = None,
) -> CheckResult:
    """Judge `metrics[metric] op threshold` into a pass/fail/error result with a message.

    `what` describes the compared number in words ("top-1 accuracy lower 95% bound").
    `estimate` names the metrics keys of the point estimate and its interval when they do
    not follow `<estimate>_low`/`_high` (qa.checks.effect). Severity (fail vs warn) is applied
    later by the runner, not here.
    """
    ok = compare(value, op, threshold)
    limit = {"metric": metric, "op": op, "value": threshold}
    size = effect(metric, op, threshold, {**metrics, metric: value}, estimate)
    if ok is None:
        message = f"{what} is {value}: cannot be compared"
        return CheckResult("error", message, metrics, limit, effect=size)
    verb = "meets" if ok else "misses"
    shown = f"{value}" if isinstance(value, int) else f"{value:.4f}"
    message = f"{what} {shown} {verb} {op} {threshold:.4g}"
    return CheckResult("pass" if ok else "fail", message, metrics, limit, effect=size)
