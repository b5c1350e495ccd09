"""Evidence: everything the engine computed once per run, shared read-only by every check."""

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from qa.metrics.intervals import DEFAULT_CONFIDENCE, DEFAULT_METHOD

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class View:
    """One thing the engine must compute: a pass of one model over one split under one transform.

    kind "logits" is a forward pass; later families add kinds ("profile", "adversarial").
    `perturbation` and `severity` name a corruption applied to the decoded images first.
    """

    kind: str = "logits"
    model: str = "candidate"  # "candidate" or "baseline"
    split: str = "eval"
    perturbation: str | None = None
    severity: int | None = None

    def name(self, sep: str = " ") -> str:
        """What the images went through: "clean", an attack's name, or a corruption at its
        severity, "gaussian_noise s3" (`sep` before the severity; the predictions file uses "-")."""
        if self.kind == "adversarial" or self.perturbation is None:
            return self.perturbation or "clean"
        return f"{self.perturbation}{sep}s{self.severity}"

    def label(self) -> str:
        """A short human name, used in messages and reports."""
        return f"{self.kind} of {self.model} on {self.split} ({self.name()})"


CLEAN = View()
BASELINE = View(model="baseline")  # the baseline's clean eval logits


@dataclass
class Evidence:
    """Labels, ids, metadata and per-view arrays for the eval split (and what else was planned).

    `arrays[view]` holds logits (N, C) float32 for logits views, already divided by the
    model's temperature. Checks read from here only; they never run models or read files.
    """

    class_names: list[str]
    labels: np.ndarray  # (N,) int64
    sample_ids: list[str]  # (N,) stable ids: relative paths
    arrays: dict[View, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, np.ndarray] = field(default_factory=dict)  # manifest columns, per sample
    split_labels: dict[str, np.ndarray] = field(default_factory=dict)  # labels of non-eval splits
    # the suite's `defaults`, which the runner sets; these defaults are the suite's own
    confidence: float = DEFAULT_CONFIDENCE
    interval_method: str = DEFAULT_METHOD  # binomial intervals: "wilson" or "clopper_pearson"
    # "candidate" and "baseline" (None without one): each model's facts (model_facts)
    model_facts: dict[str, dict | None] = field(default_factory=dict)
    # "excluded": per split, the ids of undecodable files left out of inference
    info: dict = field(default_factory=dict)
    profiles: dict[str, "pd.DataFrame"] = field(default_factory=dict)  # split -> qa.profile table

    def logits(self, view: View = CLEAN) -> np.ndarray:
        """The logits of one planned view; a KeyError here is a planning bug, not user input."""
        return self.arrays[view]

    def subset(self, mask: np.ndarray) -> "Evidence":
        """The same evidence restricted to the samples where `mask` is true (for slices)."""
        mask = np.asarray(mask, dtype=bool)
        ids = [s for s, keep in zip(self.sample_ids, mask, strict=True) if keep]
        return replace(
            self,
            labels=self.labels[mask],
            sample_ids=ids,
            arrays={v: a[mask] if len(a) == len(mask) else a for v, a in self.arrays.items()},
            metadata={k: v[mask] for k, v in self.metadata.items()},
        )


def model_facts(model) -> dict | None:
    """A loaded model's facts as plain data (None for no model): what checks may know of it.

    `model` is a qa.checkpoint.LoadedModel. The provenance is whole, the data fingerprint's
    hashes included (the leakage check reads them); reports show qa.result.model_summary of it.
    """
    if model is None:
        return None
    return {
        "path": model.path,
        "sha256": model.digest,
        "arch": model.arch,
        "class_names": list(model.class_names),
        "preprocessing": dict(model.preprocessing),
        "temperature": model.temperature,
        "provenance": dict(model.provenance),
    }
