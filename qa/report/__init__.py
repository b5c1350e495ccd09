"""Reports: the finished result of a run as plain data, and the renderers that only render it.

`RunReport` is built once by the engine and turned into the schema-v1 document once
(`json_report.to_dict`); every renderer (`json_report`, `junit`, `terminal`, `html`,
`markdown`) takes that document and computes nothing, so `qa report result.json` re-renders
any format from a saved result. `write_reports` renders every file first, writes each to a
temporary file beside its target and renames them all only when every write succeeded: a
failure leaves the previous reports (or none), never half of one.
"""

import datetime
import math
import platform
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.io import atomic_path
from qa.runner import CheckOutcome

REPORT_FILES = {
    "json": "result.json",
    "junit": "junit.xml",
    "html": "result.html",
    "markdown": "summary.md",
}


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


def now() -> str:
    """The current time, ISO 8601 in UTC, to the millisecond."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def environment(device: str) -> dict:
    """The software and machine a run used, so a result can be reproduced."""
    import torch
    import torchvision

    import qa

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "qa": qa.__version__,
        "platform": platform.platform(),
        "device": device,
    }


def model_summary(model) -> dict | None:
    """A LoadedModel as report data: identity, architecture, classes, provenance summary."""
    if model is None:
        return None
    prov = {}
    for key, value in model.provenance.items():
        if key == "data_fingerprint" and isinstance(value, dict):
            value = {k: value[k] for k in ("digest", "n_files", "n_unique", "kind") if k in value}
        if plain(value):
            prov[key] = value
    return {
        "path": model.path,
        "sha256": model.digest,
        "arch": model.arch,
        "class_names": list(model.class_names),
        "preprocessing": dict(model.preprocessing),
        "temperature": model.temperature,
        "provenance": prov,
    }


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


def render_all(doc: dict) -> dict[str, str]:
    """Every report file's text for a result document, keyed like REPORT_FILES."""
    from qa.report import html, json_report, junit, markdown

    renderers = {"json": json_report, "junit": junit, "html": html, "markdown": markdown}
    return {fmt: renderers[fmt].render(doc) for fmt in REPORT_FILES}


def write_reports(report: RunReport, out_dir: str | Path) -> dict[str, Path]:
    """Render result.json, junit.xml, result.html and summary.md, then write them all or none."""
    from qa.report import json_report

    texts = render_all(json_report.to_dict(report))
    paths = {fmt: Path(out_dir) / REPORT_FILES[fmt] for fmt in texts}
    with ExitStack() as renames:  # every rename waits until every temporary file is whole
        for fmt, text in texts.items():
            renames.enter_context(atomic_path(paths[fmt])).write_text(text, encoding="utf-8")
    return paths


def append_step_summary(doc: dict, path: str | Path) -> None:
    """Append the Markdown summary to a CI step summary (GitHub's `$GITHUB_STEP_SUMMARY`)."""
    from qa.report import markdown

    text = markdown.render(doc)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
