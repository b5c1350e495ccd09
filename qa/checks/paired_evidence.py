"""Both models' predictions on the same samples, for the regression family (qa.checks.regression).

Validated once per check: a missing baseline or non-finite logits stop the check as an error.
"""

import numpy as np

from qa.checks import Stop, finite_logits
from qa.evidence import BASELINE, CLEAN, Evidence
from qa.metrics import paired


class PairedEvidence:
    """Predictions of both models on the same samples, validated once (Stop when unsound)."""

    def __init__(self, evidence: Evidence):
        if BASELINE not in evidence.arrays:
            raise Stop("error", "no baseline logits: give `baseline:` in the suite or --baseline")
        self.labels = evidence.labels
        self.cand_logits = finite_logits(evidence, CLEAN)
        self.base_logits = finite_logits(evidence, BASELINE)
        self.cand_pred = self.cand_logits.argmax(axis=1)
        self.base_pred = self.base_logits.argmax(axis=1)
        self.cand_ok = self.cand_pred == self.labels
        self.base_ok = self.base_pred == self.labels
        self.worse, self.better = paired.discordant_counts(self.base_ok, self.cand_ok)

    def flips(self, evidence: Evidence, indices) -> list[dict]:
        """The samples at `indices`, each with its label and both models' predictions by name:
        what a report lists of the samples whose prediction changed."""
        names = evidence.class_names
        return [
            {
                "id": evidence.sample_ids[i],
                "label": names[self.labels[i]],
                "baseline": names[self.base_pred[i]],
                "candidate": names[self.cand_pred[i]],
            }
            for i in indices
        ]

    def accuracy_effect(self, confidence: float) -> dict:
        """Both models' accuracies, the paired delta with its bounds and the MDE: what a
        regression gate reports beside its own statistic (qa.checks.effect)."""
        low, high = paired.accuracy_delta_bounds(self.base_ok, self.cand_ok, confidence)
        cand, base = float(self.cand_ok.mean()), float(self.base_ok.mean())
        return {
            "measure": "accuracy",
            "candidate": cand,
            "baseline": base,
            "delta": cand - base,
            "delta_lower": low,
            "delta_upper": high,
            "mde": self.mde(confidence),
        }

    def mde(self, confidence: float, mask: np.ndarray | None = None) -> float:
        """Minimum detectable accuracy drop on these samples (qa.metrics.paired.accuracy_mde)."""
        if mask is None:
            return paired.accuracy_mde(self.base_ok, self.cand_ok, confidence)
        return paired.accuracy_mde(self.base_ok[mask], self.cand_ok[mask], confidence)
