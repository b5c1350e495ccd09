"""Data family, part two: does the eval data overlap or drift from the training data?

Leakage is tested exactly (sha256) against the train split's profile, or against the
training-data fingerprint the checkpoint records when the suite gives no train split, and
approximately (perceptual hash). Drift p-values shrink with sample size: on tens of thousands
of images a KS test flags shifts too small to matter, so every result carries the test
statistic (the effect size) beside its p-value. Plumbing is shared with qa.checks.data.
"""

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from qa.checks import CheckParams, CheckResult, Stop, gate, register
from qa.checks.data import expect, near_result, profile_of, rows_result
from qa.checks.params import MaxDistance, MaxFailed, Show
from qa.data import fingerprint_contains
from qa.evidence import Evidence, View
from qa.profile import PROFILE_EVAL, PROFILE_TRAIN, drift_tests, nearest_frame

TRAIN_SPLIT = "train split"  # details["source"] when the train split's files are known


class _PairParams(CheckParams):
    """A train-versus-eval check: reads both profiles."""

    shows_thumbnails: ClassVar[bool] = True
    show: Show = 10

    def views(self) -> list[View]:
        """The eval and train profiles (the engine gives train only if the suite has it)."""
        return [PROFILE_EVAL, PROFILE_TRAIN]


class _LeakParams(_PairParams):
    """A train-versus-eval check gated on how many eval samples leaked (failed)."""

    max_failed: MaxFailed = 0


class LeakageParams(_LeakParams):
    """No eval file may be byte-identical to a training file."""

    example: ClassVar[dict] = {}


def _training_hashes(evidence: Evidence) -> tuple[str, Any]:
    """Where training data identity comes from: the train split's profile (sha256 -> the first
    train file with those bytes), else the checkpoint's fingerprint."""
    train = evidence.profiles.get("train")
    if train is not None:
        known = train.dropna(subset=["sha256"]).drop_duplicates("sha256")
        return TRAIN_SPLIT, dict(zip(known["sha256"], known["path"], strict=True))
    provenance = (evidence.model_facts.get("candidate") or {}).get("provenance") or {}
    fingerprint = provenance.get("data_fingerprint")
    if fingerprint is None:
        raise Stop(
            "skip",
            "skip: the suite has no train split and the checkpoint records no "
            "training-data fingerprint",
        )
    return "checkpoint fingerprint", fingerprint


@register("leakage", "data", LeakageParams)
def leakage(evidence: Evidence, p: LeakageParams) -> CheckResult:
    """No eval file is byte-identical to a training file (train split, else the fingerprint).
    Against the train split, details["pairs"] names the train file each listed one matched."""
    frame = profile_of(evidence, "eval")
    source, train = _training_hashes(evidence)
    if source == TRAIN_SPLIT:
        leaked = frame["sha256"].isin(list(train)).to_numpy()
    else:
        try:
            leaked = np.array(
                [isinstance(h, str) and fingerprint_contains(train, h) for h in frame["sha256"]]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Stop(
                "error", f"the checkpoint's data fingerprint is unreadable: {exc!r}"
            ) from exc
    import pandas as pd

    table = pd.DataFrame({"path": frame["path"], "leaked": leaked})
    kwargs = {"column": "leaked", "value_set": [False]}
    outcomes = expect(table, [("ExpectColumnValuesToBeInSet", kwargs)])
    result = rows_result(table, outcomes, p, f"are in the training data ({source})", p.max_failed)
    result.details["source"] = source
    if source == TRAIN_SPLIT:  # name the train file each listed eval file matched
        matched = dict(zip(frame["path"], frame["sha256"], strict=True))
        result.details["pairs"] = [
            {"path": path, "nearest": train[matched[path]]}
            for path in result.details["failing_paths"]
        ]
    return result


class NearLeakageParams(_LeakParams):
    """No eval image may be within `max_distance` bits of perceptual hash of a train image."""

    max_distance: MaxDistance = 4
    example: ClassVar[dict] = {}


@register("near_leakage", "data", NearLeakageParams)
def near_leakage(evidence: Evidence, p: NearLeakageParams) -> CheckResult:
    """No eval image is a near-duplicate (perceptual hash) of a train image."""
    frame, train = profile_of(evidence, "eval"), profile_of(evidence, "train")
    near = nearest_frame(frame, train, same_set=False)
    return near_result(near, p, f"have a train near-duplicate (<= {p.max_distance} bits)")


class DriftParams(_PairParams):
    """Train and eval must not differ by a two-sample test at `min_p_value`."""

    min_p_value: float = Field(
        0.01, gt=0, lt=1, description="smallest p-value accepted as 'same distribution'"
    )
    example: ClassVar[dict] = {}


def _drift(evidence: Evidence, p: DriftParams, kind: str, what: str) -> CheckResult:
    frame, train = profile_of(evidence, "eval"), profile_of(evidence, "train")
    if kind == "pixel":
        frame, train = frame[frame["decodes"]], train[train["decodes"]]
    if frame.empty or train.empty:
        raise Stop("error", f"cannot test {what}: a split has no decodable samples")
    tests = drift_tests(frame, train, kind)
    kwargs = {"column": "p_value", "min_value": p.min_p_value}
    (outcome,) = expect(tests, [("ExpectColumnValuesToBeBetween", kwargs)])
    metrics: dict[str, Any] = {"n_eval": len(frame), "n_train": len(train)}
    for row in tests.itertuples():
        metrics[f"{row.test}_statistic"] = float(row.statistic)
        metrics[f"{row.test}_p_value"] = float(row.p_value)
    metrics["min_p_value"] = float(tests["p_value"].min())
    result = gate("min_p_value", metrics["min_p_value"], ">=", p.min_p_value, metrics, what)
    failing = tests["test"].iloc[outcome.failed_rows].tolist()
    result.metrics["n_failed"] = len(failing)
    result.details = {"tests": tests.to_dict("records"), "failing_tests": failing}
    if failing:
        result.message += f" (train vs eval differ by {', '.join(failing)})"
    return result


@register("label_drift", "data", DriftParams)
def label_drift(evidence: Evidence, p: DriftParams) -> CheckResult:
    """Train and eval label distributions agree (chi-square test), gated on its p-value."""
    return _drift(evidence, p, "label", "label-distribution chi-square p-value")


@register("pixel_drift", "data", DriftParams)
def pixel_drift(evidence: Evidence, p: DriftParams) -> CheckResult:
    """Train and eval per-image pixel mean and std agree (KS tests), gated on the smaller p."""
    return _drift(evidence, p, "pixel", "pixel-statistics KS smallest p-value")
