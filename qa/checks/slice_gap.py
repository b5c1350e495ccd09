"""The slice gap: how far below the whole eval set's accuracy its worst slice falls.

For each value s of a metadata column, the gap is acc_all - acc_s. With the slice sizes as
the eval set has them (n_s of n samples), acc_all = w acc_s + (1 - w) acc_rest for w = n_s / n,
so the gap is (1 - w)(acc_rest - acc_s): a fixed multiple of the difference between two
independent proportions, the slice's and the rest's (the slice is a subset of the whole:
comparing it with the whole directly would count its samples twice). Its one-sided bounds at
confidence c are Newcombe's hybrid score bounds for that difference (Newcombe 1998, method
10) built from each proportion's Clopper-Pearson bound at c, times (1 - w); a `max_gap` gate
compares the upper bound. Clopper-Pearson whatever `defaults.interval` says: computed exactly
over every outcome at c = 0.95, a slice on the boundary passes with probability up to 0.065
with Wilson components (a rest of 60 samples at 0.99 beside a slice of 200 at 0.94), and at
most 0.0502 with Clopper-Pearson ones, over rest and slice sizes from 20 to 2000, accuracies
from 0.5 to 0.99 and gaps from 0.02 to 0.2.

The check passes only when every slice's gap clears `max_gap`, and the slices are judged by
Holm's step-down (qa.slicing.holm), so every slice's pass shown is valid at once. Reported:
the worst slice (the largest compared gap), and a row per slice. A slice with fewer than
`min_size` samples is listed as skipped, not gated, as for `slices:` on any check.
"""

import math
from typing import ClassVar

from pydantic import Field

from qa.checks import CheckParams, CheckResult, Stop, finite_logits, gate, gated_on, register
from qa.checks.params import GateOn
from qa.evidence import Evidence
from qa.metrics import accuracy as acc
from qa.metrics.intervals import binomial_bounds
from qa.slicing import column_values, combine, judge_slices


class SliceGapParams(CheckParams):
    """Gate from above how far a slice's top-1 accuracy falls below the whole eval set's."""

    column: str = Field(min_length=1, description="the eval manifest column whose values slice")
    max_gap: float = Field(ge=0, le=1, description="largest acceptable accuracy gap, all - slice")
    gate_on: GateOn = "bound"
    min_size: int = Field(
        1, ge=1, description="a slice with fewer eval samples is listed as skipped, not gated"
    )
    example: ClassVar[dict] = {"column": "group", "max_gap": 0.5}


def gap_metrics(k_s: int, n_s: int, k_r: int, n_r: int, confidence: float) -> dict:
    """The gap acc_all - acc_s of a slice (k_s of n_s right) beside the rest (k_r of n_r), with
    Newcombe's hybrid score bounds at `confidence` (see the module docstring)."""
    p_s, p_r = k_s / n_s, k_r / n_r
    low_s, high_s = binomial_bounds(k_s, n_s, confidence, "clopper_pearson")
    low_r, high_r = binomial_bounds(k_r, n_r, confidence, "clopper_pearson")
    diff = p_r - p_s
    share = n_r / (n_s + n_r)  # 1 - w
    return {
        "gap": share * diff,
        "gap_low": share * (diff - math.hypot(p_r - low_r, high_s - p_s)),
        "gap_high": share * (diff + math.hypot(high_r - p_r, p_s - low_s)),
        "accuracy_all": (k_s + k_r) / (n_s + n_r),
        "accuracy_slice": p_s,
        "accuracy_rest": p_r,
        "k": k_s,
        "n": n_s,
        "n_all": n_s + n_r,
        "confidence": confidence,
        "interval": "Newcombe hybrid score, Clopper-Pearson components",
    }


@register("slice_gap", "accuracy", SliceGapParams)
def slice_gap(evidence: Evidence, p: SliceGapParams) -> CheckResult:
    """Accuracy gap between the whole eval set and each slice of a column, gated from above."""
    logits = finite_logits(evidence)
    try:
        values = column_values(evidence, p.column)
    except ValueError as exc:
        raise Stop("error", str(exc)) from None
    hits = acc.topk_correct(logits, evidence.labels, 1)
    sizes = {v: int((values == v).sum()) for v in sorted(set(values.tolist()))}
    if len(sizes) < 2:
        raise Stop("error", f"column {p.column!r} has {len(sizes)} value(s): no gap to gate")
    k_all, n_all = int(hits.sum()), len(hits)
    counts = {v: int(hits[values == v].sum()) for v in sizes}

    def judge(v: str, level: float) -> CheckResult:
        k, n = counts[v], sizes[v]
        metrics = gap_metrics(k, n, k_all - k, n_all - n, level)
        deciding, words = gated_on("gap", "<=", p.gate_on, level)
        result = gate(deciding, metrics[deciding], "<=", p.max_gap, metrics, "gap" + words)
        result.message = f"accuracy {result.message} ({k}/{n} vs {k_all}/{n_all} overall)"
        return result

    rows = judge_slices(sizes, p.min_size, 1 - evidence.confidence, judge)
    return combine(p.column, rows, evidence.confidence, p.min_size)
