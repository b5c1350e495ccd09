"""Data family, part three: are the split's labels right?

`label_issues` flags the samples whose given label disagrees confidently with out-of-sample
predicted probabilities, by confident learning (qa.metrics.label_issues, cleanlab's default
filter), and lists them worst first with the label the probabilities suggest.

Out-of-sample, per split:
- eval and calibration: the candidate's own probabilities (softmax of its temperature-scaled
  logits). The candidate never trained on them; the leakage checks guard that assumption.
- train: the candidate's train predictions are in-sample (a memorised wrong label agrees with
  itself), so the probabilities come from K-fold cross-validation (`folds`, stratified,
  seeded) of a multinomial logistic regression on the candidate's train logits, each sample
  predicted by the regression fitted without it. The logits come from a network trained on
  those very labels, so they carry some of the wrong labels into the features: on train the
  check misses some issues, it does not invent them.
"""

from collections import Counter
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from qa.checks import CheckParams, CheckResult, Stop, finite_logits, gate, gated_on, register
from qa.checks.data import Split
from qa.checks.params import GateOn, Seed, Show
from qa.evidence import Evidence, View
from qa.metrics import calibration as cal
from qa.metrics import label_issues as li
from qa.metrics.intervals import binomial_bounds

SHOWN_IN_MESSAGE = 3


class LabelIssuesParams(CheckParams):
    """Gate how many of a split's labels confident learning flags as wrong: `max_count` or
    `max_rate` (its upper bound at the suite's confidence by default)."""

    shows_thumbnails: ClassVar[bool] = True
    split: Split = Field("eval", description="the split whose labels are checked")
    max_count: int | None = Field(None, ge=0, description="most flagged labels allowed")
    max_rate: float | None = Field(
        None, ge=0, le=1, description="largest acceptable share of flagged labels"
    )
    gate_on: GateOn = "bound"
    folds: int = Field(
        5, ge=2, le=100, description="cross-validation folds giving the train split's probabilities"
    )
    seed: Seed = 0
    show: Show = 50
    example: ClassVar[dict] = {"max_count": 0}

    @model_validator(mode="after")
    def _one_gate(self):
        if (self.max_count is None) == (self.max_rate is None):
            raise ValueError("give exactly one of max_count, max_rate")
        return self

    def views(self) -> list[View]:
        """The candidate's clean logits on the checked split."""
        return [View(split=self.split)]


def _out_of_sample(evidence: Evidence, p: LabelIssuesParams):
    """(labels, sample ids, out-of-sample probabilities, how they were made) of the split."""
    view = View(split=p.split)
    if view not in evidence.arrays:
        if p.split == "eval":
            raise Stop("error", "no logits of the eval split were computed")
        raise Stop("skip", f"skip: the suite has no {p.split} split")
    logits = finite_logits(evidence, view)
    if len(logits) == 0:
        raise Stop("error", f"the {p.split} split has no samples")
    if p.split == "eval":
        labels, ids = evidence.labels, evidence.sample_ids
    else:
        labels, ids = evidence.split_labels[p.split], evidence.split_ids.get(p.split)
    if ids is None or len(ids) != len(labels) or len(labels) != len(logits):
        raise Stop("error", f"the {p.split} split's labels, ids and logits do not line up")
    if p.split != "train":
        return labels, ids, cal.softmax(logits), "the candidate's predictions (held out)"
    return (
        labels,
        ids,
        _cross_validated(evidence, logits, labels, p),
        (f"{p.folds}-fold cross-validated logistic regression on the candidate's train logits"),
    )


def _cross_validated(evidence: Evidence, logits, labels, p: LabelIssuesParams) -> np.ndarray:
    """Out-of-sample probabilities of the train split; Stop when a class is too small to
    appear in every fold."""
    counts = np.bincount(labels, minlength=logits.shape[1])
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise Stop("error", "the train split has one class: nothing to cross-validate")
    few = [j for j in present if counts[j] < p.folds]
    if few:
        names = ", ".join(f"{evidence.class_names[j]} ({counts[j]})" for j in few[:3])
        raise Stop(
            "error",
            f"{p.folds}-fold cross-validation needs {p.folds} train samples of every class; "
            f"fewer in {names}: lower `folds`",
        )
    return li.cross_validated_probabilities(logits, labels, logits.shape[1], p.folds, p.seed)


def _issues(evidence: Evidence, labels, ids, probs, order) -> list[dict]:
    """One row per flagged sample, in `order`: its id, given and suggested label."""
    names = evidence.class_names
    suggested = probs[order].argmax(axis=1)
    return [
        {
            "path": ids[i],
            "given": names[labels[i]],
            "suggested": names[s],
            "self_confidence": float(probs[i, labels[i]]),
            "suggested_probability": float(probs[i, s]),
        }
        for i, s in zip(order.tolist(), suggested.tolist(), strict=True)
    ]


@register("label_issues", "data", LabelIssuesParams)
def label_issues(evidence: Evidence, p: LabelIssuesParams) -> CheckResult:
    """Labels that disagree confidently with out-of-sample predictions, gated on count or rate.

    Confident learning (qa.metrics.label_issues) flags them; they are listed worst first (lowest
    probability of the given label) with the label the probabilities suggest.
    """
    labels, ids, probs, source = _out_of_sample(evidence, p)
    labels = np.asarray(labels, dtype=np.int64)
    order = li.ranked_issues(labels, probs)
    k, n = len(order), len(labels)
    issues = _issues(evidence, labels, ids, probs, order)
    low, high = binomial_bounds(k, n, evidence.confidence, evidence.interval_method)
    metrics = {
        "n_issues": k,
        "issue_rate": k / n,
        "issue_rate_low": low,
        "issue_rate_high": high,
        "k": k,
        "n": n,
        "confidence": evidence.confidence,
        "interval": evidence.interval_method,
    }
    what = f"{p.split} labels flagged"
    if p.max_count is not None:
        result = gate("n_issues", k, "<=", p.max_count, metrics, what)
    else:
        deciding, words = gated_on("issue_rate", "<=", p.gate_on, evidence.confidence)
        result = gate(
            deciding, metrics[deciding], "<=", p.max_rate, metrics, f"rate of {what}{words}"
        )
        result.message += f" ({k}/{n})"
    pairs = Counter((row["given"], row["suggested"]) for row in issues)
    result.details = {
        "source": source,
        "issues": issues[: p.show],
        "failing_paths": [row["path"] for row in issues[: p.show]],
        "by_label": [{"given": g, "suggested": s, "count": c} for (g, s), c in pairs.most_common()],
    }
    listed = "; ".join(
        f"{row['path']} labelled {row['given']}, looks like {row['suggested']}"
        for row in issues[:SHOWN_IN_MESSAGE]
    )
    more = f" and {k - SHOWN_IN_MESSAGE} more" if k > SHOWN_IN_MESSAGE else ""
    result.message = (
        f"{k} of {n} {p.split} labels disagree confidently with {source}; {result.message}"
    )
    result.message += f": {listed}{more}" if k else ""
    return result
