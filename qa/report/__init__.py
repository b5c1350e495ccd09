"""Reports: the finished result of a run as plain data, and the renderers that only render it.

`RunReport` is built once by the engine and turned into the result document once
(`json_report.to_dict`; a run that stopped on an error gets `json_report.error_document`);
every renderer (`json_report`, `junit`, `terminal`, `html`, `markdown`) takes that document
and computes nothing, so `qa report result.json` re-renders any format from a saved result.
`write_report_set` renders every file first, then replaces result.json, junit.xml,
result.html and summary.md together: a failure leaves the previous set (or none), never a
mix of two runs and never half of a file.
"""

import datetime
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.errors import InputError
from qa.io import IncompleteReplace, atomic_paths
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


class ReportWriteError(InputError):
    """The report set could not be written; the message says what the folder holds now."""


def write_reports(report: RunReport, out_dir: str | Path) -> dict[str, Path]:
    """Write the report set of a finished run (see write_report_set)."""
    from qa.report import json_report

    return write_report_set(json_report.to_dict(report), out_dir)


def write_report_set(doc: dict, out_dir: str | Path) -> dict[str, Path]:
    """Render result.json, junit.xml, result.html and summary.md from `doc`, then replace the
    four files together or not at all.

    Raises ReportWriteError, one line: the cause and whether the folder still holds the
    previous set (or none) or, should putting it back fail too, which files are new.
    """
    texts = render_all(doc)
    paths = {fmt: Path(out_dir) / REPORT_FILES[fmt] for fmt in texts}
    try:
        with atomic_paths(list(paths.values())) as temporaries:
            for tmp, text in zip(temporaries, texts.values(), strict=True):
                tmp.write_text(text, encoding="utf-8")
    except IncompleteReplace as exc:
        new = ", ".join(p.name for p in exc.replaced)
        raise ReportWriteError(
            f"--out {out_dir}: the reports could not be written ({exc.__cause__}); "
            f"{new} (this run's) could not be put back; the other files are unchanged"
        ) from None
    except OSError as exc:
        raise ReportWriteError(
            f"--out {out_dir}: the reports could not be written ({exc}); "
            "the folder holds the previous reports, if any, unchanged"
        ) from None
    return paths


def append_step_summary(doc: dict, path: str | Path) -> None:
    """Append the Markdown summary to a CI step summary (GitHub's `$GITHUB_STEP_SUMMARY`)."""
    from qa.report import markdown

    text = markdown.render(doc)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
