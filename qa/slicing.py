"""Per-slice gates: one check judged on every value of a metadata column, Holm-corrected.

`slices: {column: camera}` on a check runs it on the eval samples of each value of the column
(each a slice) and passes only when every slice passes. A gate passes when its one-sided bound
at confidence c clears the threshold: it rejects "this slice is bad" at level alpha = 1 - c.
So that every slice's PASS shown is valid at once (the chance of any wrong slice pass is at
most alpha, whatever the slices' true values), the slices are judged by Holm's step-down,
written with bounds instead of p-values (`holm`): with r slices not yet passed, each is judged
at confidence 1 - alpha / r; those that pass are removed, r shrinks, and the rest are judged
again at the new level, until a round passes none. The slices left fail (or error) at their
last level, which each row reports. This is Holm's procedure on the p-values, since a bound
at confidence 1 - a clears the threshold exactly when the p-value is at most a
(tests/test_slicing.py checks it against Holm on binomial-test p-values). With `gate_on:
point` the level changes nothing: each slice passes on its point estimate.

A slice with fewer than `min_size` samples is not judged: its row says so (status `skip`)
and the message lists it; it blocks nothing, and a check with no slice left to judge is an
error. The default `min_size` of 1 judges every slice, where a small slice's wide interval
makes a bound gate fail rather than pass.

The check's own result is the worst slice's (lowest compared value for a `>=` gate, highest
for `<=`), under the combined status, with `slices`: one row per slice.
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace

import numpy as np

from qa.checks import CheckKind, CheckParams, CheckResult
from qa.evidence import Evidence

MAX_LISTED = 10  # slices named in one message; every one is in the rows


class SliceError(ValueError):
    """A slice that cannot be taken: an unknown column, or no sample in it."""


@dataclass
class Judged:
    """One slice's judgement: its value, size, result and the confidence it was judged at."""

    value: str
    n: int
    result: CheckResult
    confidence: float | None  # None for a slice too small to judge


def holm(
    keys: list[Hashable], alpha: float, judge: Callable[[Hashable, float], CheckResult]
) -> dict[Hashable, tuple[CheckResult, float]]:
    """Holm's step-down over `keys`, each judged by `judge(key, confidence)`: every key's last
    result and the confidence it was judged at. A key passes when its result is "pass"."""
    remaining, out = list(keys), {}
    while remaining:
        level = 1 - alpha / len(remaining)
        for key in remaining:
            out[key] = (judge(key, level), level)
        passed = {key for key in remaining if out[key][0].status == "pass"}
        if not passed:
            break
        remaining = [key for key in remaining if key not in passed]
    return out


def column_values(evidence: Evidence, column: str) -> np.ndarray:
    """The column's per-sample values as text; SliceError, one line, for an unknown column."""
    if column not in evidence.metadata:
        known = ", ".join(sorted(evidence.metadata)) or "none (slices need a manifest CSV)"
        raise SliceError(f"slice column {column!r} is not in the eval metadata; columns: {known}")
    return np.asarray(evidence.metadata[column]).astype(str)


def run_sliced(
    kind: CheckKind, params: CheckParams, evidence: Evidence, column: str, min_size: int
) -> CheckResult:
    """The check `kind` judged on every slice of `column`, Holm-corrected (module docstring)."""
    values = column_values(evidence, column)
    parts = {v: evidence.subset(values == v) for v in sorted(set(values.tolist()))}
    if not parts:
        raise SliceError(f"slice column {column!r} holds no samples")
    sizes = {v: len(p.labels) for v, p in parts.items()}
    rows = judge_slices(
        sizes,
        min_size,
        1 - evidence.confidence,
        lambda v, level: kind.run(replace(parts[v], confidence=level), params),
    )
    return combine(column, rows, evidence.confidence, min_size)


def judge_slices(
    sizes: dict[str, int],
    min_size: int,
    alpha: float,
    judge: Callable[[str, float], CheckResult],
) -> list[Judged]:
    """Every slice (value: sample count) judged by Holm's step-down at family-wise level
    `alpha`, those with fewer than `min_size` samples listed as skipped, in `sizes`' order."""
    gated = [v for v, n in sizes.items() if n >= min_size]
    judged = holm(gated, alpha, judge)
    return [
        Judged(v, n, *judged[v])
        if v in judged
        else Judged(v, n, CheckResult("skip", f"{n} samples, fewer than min_size {min_size}"), None)
        for v, n in sizes.items()
    ]


def combine(column: str, rows: list[Judged], confidence: float, min_size: int) -> CheckResult:
    """The check's result from its slices' judgements: the worst slice's numbers, the combined
    status (a failed slice fails it, else an errored one makes it an error), a row per slice."""
    judged = [r for r in rows if r.confidence is not None]
    if not judged:
        sizes = ", ".join(f"{r.value} ({r.n})" for r in rows[:MAX_LISTED])
        return CheckResult(
            "error",
            f"no slice of {column} has min_size {min_size} samples: {sizes}",
            slices=[_row(r) for r in rows],
        )
    statuses = {r.result.status for r in judged}
    status = next((s for s in ("fail", "error", "pass") if s in statuses), "skip")
    worst = _worst(judged)
    failing = [r for r in judged if r.result.status in ("fail", "error")]
    family = f"Holm, {confidence * 100:g}% for all slices at once"
    if failing:
        named = ", ".join(f"{column}={r.value}" for r in failing[:MAX_LISTED])
        more = f" and {len(failing) - MAX_LISTED} more" if len(failing) > MAX_LISTED else ""
        head = f"{len(failing)} of {len(judged)} slices not passed ({family}): {named}{more}"
    else:
        head = f"all {len(judged)} slices of {column} pass ({family})"
    message = f"{head}; worst {column}={worst.value}: {worst.result.message}"
    skipped = [r for r in rows if r.confidence is None]
    if skipped:
        listed = ", ".join(f"{r.value} ({r.n})" for r in skipped[:MAX_LISTED])
        message += f"; not gated, under min_size {min_size}: {listed}"
    metrics = {
        **worst.result.metrics,
        "slice_column": column,
        "worst_slice": worst.value,
        "slices": len(judged),
        "slices_failed": sum(r.result.status == "fail" for r in judged),
        "slices_skipped": len(skipped),
    }
    return CheckResult(
        status,
        message,
        metrics,
        worst.result.threshold,
        worst.result.details,
        worst.result.effect,
        slices=[_row(r) for r in rows],
    )


def _worst(judged: list[Judged]) -> Judged:
    """The slice whose compared value is furthest on the wrong side of the gate; a slice
    that could not be compared (an error) is worse than any that could, one the check does
    not apply to (a skip) better."""

    def badness(r: Judged) -> float:
        if r.result.status == "skip":
            return float("-inf")
        t = r.result.threshold
        value = (r.result.metrics or {}).get(t["metric"]) if t else None
        if not isinstance(value, int | float) or not np.isfinite(value):
            return float("inf")
        return -value if t["op"] == ">=" else value

    return max(judged, key=badness)


def _row(r: Judged) -> dict:
    """A slice as result.json lists it: what reports render with the check's own formatting."""
    return {
        "value": r.value,
        "n": r.n,
        "status": r.result.status,
        "confidence": r.confidence,
        "message": r.result.message,
        "metrics": r.result.metrics,
        "threshold": r.result.threshold,
        "effect": r.result.effect,
    }
