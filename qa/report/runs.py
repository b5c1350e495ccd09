"""Saved runs side by side: what `qa diff` (qa.report.compare) and `qa history`
(qa.report.history) read of each result.json, and the HTML page both are rendered into.

A run is compared by its checks' names (unique in a suite; `load_run` refuses a hand-made file
that repeats one) and, per check, by its **compared value**: the number its gate compared,
`metrics[threshold.metric]` (None for a check without a gate). A check is **failing** when it
blocks the verdict: status `fail` or `error` (a gate that failed or could not be evaluated,
exit 1), or `warn` in a run made with `--strict`.
"""

import datetime
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from qa.errors import InputError
from qa.report import json_report
from qa.report.fmt import printable, rounded

BLOCKING = ("fail", "error")


def load_run(path: str | Path) -> dict:
    """A saved result document (json_report.load: one-line InputError, exit 2) whose check
    names are unique, so that a check matches at most one check of another run."""
    doc = json_report.load(path)
    seen = set()
    for i, check in enumerate(doc["checks"]):
        if check["name"] in seen:
            raise InputError(
                f"{path}: checks.{i}.name: expected a name unique in the run, "
                f"found {printable(check['name'])!r} twice"
            )
        seen.add(check["name"])
    return doc


def compared_value(check: dict) -> Any:
    """The number the check's gate compared with its threshold; None without a gate."""
    threshold = check.get("threshold")
    return (check.get("metrics") or {}).get(threshold["metric"]) if threshold else None


def finite(value: Any) -> float | None:
    """`value` as a float when it is a finite number (not a bool), else None: what can be
    subtracted or plotted."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def gate_text(check: dict) -> str:
    """The check's gate as text, `accuracy_low >= 0.9`; "" without one."""
    threshold = check.get("threshold")
    if not threshold:
        return ""
    return printable(f"{threshold['metric']} {threshold['op']} {rounded(threshold['value'])}")


def failing(check: dict, doc: dict) -> bool:
    """Whether the check blocks its run's verdict (see the module docstring)."""
    return check["status"] in BLOCKING or (check["status"] == "warn" and bool(doc.get("strict")))


def started_at(doc: dict, path: str | Path) -> datetime.datetime:
    """When the run started, timezone-aware (a time without an offset is read as UTC)."""
    try:
        when = datetime.datetime.fromisoformat(doc["started"])
    except ValueError:
        raise InputError(
            f"{path}: started: expected an ISO 8601 time, found {printable(doc['started'])!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class RunInfo:
    """Who a run was: its file, suite, start, verdict and the models it gated, as shown."""

    file: str
    suite: str
    started: str
    verdict: str
    exit_code: int
    checkpoint: str
    sha256: str  # the first 12 hex digits; "" in an error document
    baseline: str  # "path (sha256 ...)" or ""
    error: str  # the one line of a run stopped by exit 2 or 3, else ""

    @classmethod
    def of(cls, path: str | Path, doc: dict) -> "RunInfo":
        """The run saved at `path` as `doc`; every string made printable."""
        ckpt, base = doc["checkpoint"], doc.get("baseline")
        return cls(
            file=printable(path),
            suite=printable(doc["suite"]["name"]),
            started=printable(doc["started"]),
            verdict=doc["verdict"],
            exit_code=doc["exit_code"],
            checkpoint=printable(ckpt["path"]),
            sha256=printable(str(ckpt.get("sha256") or "")[:12]),
            baseline=printable(f"{base['path']} (sha256 {base['sha256'][:12]})") if base else "",
            error=printable(doc["error"]["message"]) if doc.get("error") else "",
        )

    def models(self) -> str:
        """The checkpoint, its digest and the baseline, on one line."""
        digest = f" (sha256 {self.sha256})" if self.sha256 else ""
        against = f" against baseline {self.baseline}" if self.baseline else ""
        return f"{self.checkpoint}{digest}{against}"


def html_page(template: str, **context) -> str:
    """Render `templates/<template>` with autoescape on: names, messages and paths come from
    result files, so every value is escaped and made printable; the pages hold no markup that
    was not written in the template."""
    env = Environment(
        loader=PackageLoader("qa.report", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=printable,
    )
    return env.get_template(template).render(**context)
