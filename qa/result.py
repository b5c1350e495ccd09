"""What a run decided, as plain data: each check's outcome, the run report, model summaries.

A low module on purpose: the runner makes CheckOutcomes, the application the RunReport, and
the report layer (qa.report) reads both without importing the runner, the suite or torch.
"""

import datetime
import math
from dataclasses import dataclass, field
from typing import Any

from qa.checks import CheckResult
from qa.data import fingerprint_summary


@dataclass
class CheckOutcome:
    """One check's final outcome: its result, with the suite's severity applied to the status."""

    name: str
    kind: str
    family: str
    severity: str  # "fail" | "warn"
    status: str  # one of qa.checks.STATUSES; a failing severity:warn check is "warn"
    result: CheckResult
    slice: dict | None
    seconds: float


@dataclass
class RunReport:
    """Everything one `qa run` decided and why: what a report needs, nothing it must compute."""

    suite_name: str
    suite_path: str
    verdict: str  # pass | fail | error (qa.runner.verdict)
    exit_code: int
    strict: bool
    started: str  # ISO 8601, UTC
    finished: str
    duration: float  # seconds
    checkpoint: dict
    baseline: dict | None
    environment: dict
    outcomes: list[CheckOutcome] = field(default_factory=list)
    overview: dict = field(default_factory=dict)  # {class_names, confusion_matrix, n}: figures
    gallery: dict = field(default_factory=dict)  # images of mistakes, flips...: qa.gallery


def now() -> str:
    """The current time, ISO 8601 in UTC, to the millisecond."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def model_summary(facts: dict | None) -> dict | None:
    """A model's facts (qa.evidence.model_facts) as the report shows them: identity,
    architecture, classes, preprocessing, temperature, and the provenance entries that are
    plain JSON data, the data fingerprint summarised (not the hash of every file)."""
    if facts is None:
        return None
    prov = {}
    for key, value in facts["provenance"].items():
        if key == "data_fingerprint" and isinstance(value, dict):
            value = fingerprint_summary(value)
        if plain(value):
            prov[key] = value
    return {**facts, "provenance": prov}


def plain(value: Any) -> bool:
    """Whether `value` is JSON data as is (no tensors or arrays): what a summary keeps."""
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    return False
