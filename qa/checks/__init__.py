"""The check registry: every check kind registers here by name, with a typed parameter schema.

A check is `fn(evidence, params) -> CheckResult`: a pure function of evidence. Its parameter
model (pydantic, extra="forbid") is what `qa validate` checks and what `qa checks` lists; its
`views()` tells the engine what to compute. Families live in sibling modules, imported by
`load_all()`; registering a name twice is an error.
"""

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from qa.evidence import CLEAN, Evidence, View

Status = Literal["pass", "fail", "warn", "error", "skip"]
FAMILY_MODULES = (
    "qa.checks.accuracy",
    "qa.checks.calibration",
    "qa.checks.data",
    "qa.checks.leakage",
    "qa.checks.regression",
    "qa.checks.robustness",
)


class CheckParams(BaseModel):
    """Base of every check's parameters: unknown keys are errors, never silently ignored.

    Every kind's parameter class defines `example: ClassVar[dict]`, minimal valid parameters:
    `qa checks` shows it and the registry contract tests run every kind with it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    needs_baseline: ClassVar[bool] = False
    example: ClassVar[dict]

    def views(self) -> list[View]:
        """The views this check reads; most read the candidate's clean logits."""
        return [CLEAN]


@dataclass
class CheckResult:
    """The outcome of one check: every number it compared, so a reader can redo the decision.

    `threshold` is {"metric": name in metrics, "op": ">=" or "<=", "value": number} or None.
    """

    status: Status
    message: str
    metrics: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)


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


REGISTRY: dict[str, CheckKind] = {}


def register(kind: str, family: str, params: type[CheckParams]):
    """Decorator: register `fn` as check `kind` of `family` taking `params`."""

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


def compare(value: float, op: str, threshold: float) -> bool | None:
    """Apply a gate comparison; None when the value is NaN or infinite (never a silent pass)."""
    if value is None or not math.isfinite(value):
        return None
    if op == ">=":
        return value >= threshold
    if op == "<=":
        return value <= threshold
    raise ValueError(f"unknown comparison {op!r}")


def gate(
    metric: str, value: float, op: str, threshold: float, metrics: dict, what: str
) -> CheckResult:
    """Judge `metrics[metric] op threshold` into a pass/fail/error result with a message.

    `what` describes the compared number in words ("top-1 accuracy lower 95% bound").
    Severity (fail vs warn) is applied later by the runner, not here.
    """
    ok = compare(value, op, threshold)
    limit = {"metric": metric, "op": op, "value": threshold}
    if ok is None:
        return CheckResult("error", f"{what} is {value}: cannot be compared", metrics, limit)
    verb = "meets" if ok else "misses"
    return CheckResult(
        "pass" if ok else "fail", f"{what} {value:.4f} {verb} {op} {threshold:g}", metrics, limit
    )
