"""Robustness metrics: accuracy and flips under perturbation, corruption errors and mCE.

Formulas of Hendrycks & Dietterich (2019), with E_{s,f} the top-1 error of the model under
corruption f at severity s, E_clean its clean error, and E^ref those of a reference model:

    CE_f          = sum_s E_{s,f} / sum_s E^ref_{s,f}
    relative CE_f = sum_s (E_{s,f} - E_clean) / sum_s (E^ref_{s,f} - E^ref_clean)
    mCE           = mean_f CE_f,        relative mCE = mean_f relative CE_f

The paper's reference is AlexNet; here it is the suite's baseline model or, without one, a
"clean reference": a model whose error under every corruption equals the candidate's clean
error and whose clean error is 0, which gives CE_f = mean_s E_{s,f} / E_clean and relative
CE_f = mean_s (E_{s,f} - E_clean) / E_clean. A denominator that is not positive makes the
quotient undefined: nan, never a silently huge or negative number.
"""

import numpy as np


def error_rate(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 error: the fraction of samples whose argmax is not the label (nan when empty)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    return float((np.asarray(logits).argmax(axis=1) != labels).mean())


def flip_rate(clean_logits: np.ndarray, perturbed_logits: np.ndarray) -> float:
    """Fraction of samples whose top-1 prediction differs from the clean one (nan when empty)."""
    clean = np.asarray(clean_logits).argmax(axis=1)
    if len(clean) == 0:
        return float("nan")
    return float((np.asarray(perturbed_logits).argmax(axis=1) != clean).mean())


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def corruption_error(errors, reference_errors) -> float:
    """CE_f: the summed errors over severities divided by the reference's summed errors."""
    errors, reference = np.asarray(errors, float), np.asarray(reference_errors, float)
    if errors.shape != reference.shape or errors.size == 0:
        raise ValueError(f"Expected errors of equal length, got {errors.shape} {reference.shape}")
    return _ratio(errors.sum(), reference.sum())


def relative_corruption_error(
    errors, clean_error: float, reference_errors, reference_clean_error: float
) -> float:
    """Relative CE_f: the error added by the corruption over the reference's added error."""
    errors, reference = np.asarray(errors, float), np.asarray(reference_errors, float)
    if errors.shape != reference.shape or errors.size == 0:
        raise ValueError(f"Expected errors of equal length, got {errors.shape} {reference.shape}")
    return _ratio((errors - clean_error).sum(), (reference - reference_clean_error).sum())


def mean_corruption_error(
    errors: dict[str, list[float]],
    clean_error: float,
    reference_errors: dict[str, list[float]],
    reference_clean_error: float,
) -> dict:
    """mCE and relative mCE over the corruptions of `errors` (name -> errors by severity).

    Returns {"mce", "relative_mce", "ce": {name: CE_f}, "relative_ce": {name: ...}}; a mean
    is nan when any of its terms is.
    """
    ce = {f: corruption_error(errors[f], reference_errors[f]) for f in errors}
    rel = {
        f: relative_corruption_error(
            errors[f], clean_error, reference_errors[f], reference_clean_error
        )
        for f in errors
    }
    return {
        "mce": float(np.mean(list(ce.values()))),
        "relative_mce": float(np.mean(list(rel.values()))),
        "ce": ce,
        "relative_ce": rel,
    }


def clean_reference(errors: dict[str, list[float]], clean_error: float) -> dict[str, list[float]]:
    """The clean reference's errors: the candidate's clean error at every corruption and severity."""
    return {f: [clean_error] * len(e) for f, e in errors.items()}
