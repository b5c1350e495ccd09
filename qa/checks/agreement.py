"""Regression family, exact: does the candidate predict what the baseline predicts, sample by sample?

For a model that should be the baseline in another form (an ONNX export of a checkpoint, a
recompiled or re-saved copy), "as good as" is not the question: "the same" is. The count of
eval samples whose top-1 prediction differs is exact over the eval set, so it is gated as it
is, with no interval and no confidence: it claims nothing beyond these samples, and a
tolerance of 0 means not one sample may change. The largest logit difference (after each
model's temperature) is reported, and gated too when `max_logit_diff` is given. A baseline
that is the candidate's own file (same sha256) would agree vacuously: that is an error; and
when the candidate names its source checkpoint (an ONNX export's `qa.source_sha256`), the
result says whether the baseline is that checkpoint.
"""

from typing import ClassVar

import numpy as np
from pydantic import Field

from qa.checks import CheckResult, Stop, gate, register
from qa.checks.paired_evidence import PairedEvidence
from qa.checks.regression import RegressionParams
from qa.evidence import Evidence
from qa.metrics.calibration import softmax


class AgreementParams(RegressionParams):
    """Gate the exact number of eval samples whose top-1 prediction differs from the baseline's."""

    max_flips: int = Field(
        0, ge=0, description="most eval samples whose top-1 prediction may differ (exact count)"
    )
    max_logit_diff: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="largest acceptable |candidate - baseline| over every logit (after "
        "temperature); unset: reported, not gated",
    )
    example: ClassVar[dict] = {"max_flips": 0}


@register("prediction_agreement", "regression", AgreementParams)
def prediction_agreement(evidence: Evidence, p: AgreementParams) -> CheckResult:
    """Exact count of eval samples predicted differently from the baseline: "the export is faithful"."""
    pe = PairedEvidence(evidence)
    candidate = evidence.model_facts.get("candidate") or {}
    baseline = evidence.model_facts.get("baseline") or {}
    if candidate.get("sha256") and candidate["sha256"] == baseline.get("sha256"):
        raise Stop("error", "the baseline is the candidate's own file: it agrees with itself")
    n = len(pe.labels)
    differ = np.flatnonzero(pe.cand_pred != pe.base_pred)
    logit_diff = float(np.abs(pe.cand_logits - pe.base_logits).max(initial=0.0))
    prob_diff = np.abs(softmax(pe.cand_logits) - softmax(pe.base_logits)).max(initial=0.0)
    cand, base = float(pe.cand_ok.mean()), float(pe.base_ok.mean())
    metrics = {
        "flips": len(differ),
        "flip_rate": len(differ) / n,
        "max_logit_diff": logit_diff,
        "max_prob_diff": float(prob_diff),
        "n": n,
        "measure": "accuracy",
        "candidate": cand,
        "baseline": base,
        "delta": cand - base,
    }
    source = (candidate.get("provenance") or {}).get("source_sha256")
    if source:  # an export names its source checkpoint: say whether that is the baseline
        metrics["baseline_is_source"] = source == baseline.get("sha256")
    result = gate("flips", len(differ), "<=", p.max_flips, metrics, "predictions changed")
    message = f"{result.message}; largest logit change {logit_diff:.3g}"
    if p.max_logit_diff is not None:
        logits = gate(
            "max_logit_diff", logit_diff, "<=", p.max_logit_diff, metrics, "largest logit change"
        )
        message += f" {'meets' if logits.status == 'pass' else 'misses'} <= {p.max_logit_diff:g}"
        result = result if result.status != "pass" else logits
    result.message = f"{message} (exact over {n} eval samples)"
    result.details = {"flips": pe.flips(evidence, differ)}
    return result
