"""The JSON report (`result.json`): every decision of a run, with the numbers to redo it by hand.

Schema, version 1 (a change that removes or renames a field bumps `schema_version`):

    schema_version  1
    suite           {"name": str, "path": str}
    verdict         "pass" | "fail" | "error"   ("error": no gate failed, one could not be evaluated)
    exit_code       0 (pass) | 1 (gate failed or not evaluated)
    strict          bool: whether a `warn` counted as a failure
    started, finished   ISO 8601 UTC timestamps; duration  seconds (float)
    checkpoint      {"path", "sha256" (of the file's bytes), "arch", "class_names" (index order),
                     "preprocessing", "temperature", "provenance" (plain-data summary: config,
                     metrics, versions, data_fingerprint {digest, n_files, ...})}
    baseline        the same for the baseline, or null
    environment     {"python", "torch", "torchvision", "qa", "platform", "device"}
    overview        {"class_names", "confusion_matrix" (rows: true class, columns: predicted),
                     "n"} of the candidate on clean eval, for the report's figures; {} if none
    summary         {"pass": n, "fail": n, "warn": n, "error": n, "skip": n}
    checks          one object per check, in suite order:
        name, kind, family      the check as the suite names it; family is the check's module
        severity                "fail" (blocks) | "warn" (reported, blocks only with --strict)
        status                  "pass" | "fail" | "warn" | "error" | "skip" (severity applied)
        message                 one line, e.g. "top-1 accuracy lower 95% bound 0.9412 meets >= 0.9"
        metrics                 every number computed: point estimates, interval ends
                                (`<metric>_low`/`_high`), counts (k, n), confidence, method
        threshold               {"metric": key in metrics, "op": ">=" | "<=", "value": number},
                                or null: the decision is metrics[metric] op value
        details                 per-class rows, bins and the like; a crashed check's traceback
        slice                   {"column", "equals" | "in"} the check was restricted to, or null
        seconds                 time the check took

NumPy scalars and arrays are written as numbers and lists; NaN and infinities (not valid JSON)
are written as null.
"""

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qa.errors import InputError
from qa.report import RunReport

SCHEMA_VERSION = 1
STATUSES = ("pass", "fail", "warn", "error", "skip")
DOC_KEYS = (
    "suite",
    "verdict",
    "exit_code",
    "started",
    "duration",
    "checkpoint",
    "summary",
    "checks",
)
CHECK_KEYS = (
    "name",
    "kind",
    "family",
    "severity",
    "status",
    "message",
    "metrics",
    "threshold",
    "seconds",
)


def to_dict(report: RunReport) -> dict:
    """The report as schema-version-1 data (see the module docstring)."""
    counts = {s: sum(o.status == s for o in report.outcomes) for s in STATUSES}
    return jsonable(
        {
            "schema_version": SCHEMA_VERSION,
            "suite": {"name": report.suite_name, "path": report.suite_path},
            "verdict": report.verdict,
            "exit_code": report.exit_code,
            "strict": report.strict,
            "started": report.started,
            "finished": report.finished,
            "duration": report.duration,
            "checkpoint": report.checkpoint,
            "baseline": report.baseline,
            "environment": report.environment,
            "overview": report.overview,
            "summary": counts,
            "checks": [
                {
                    "name": o.name,
                    "kind": o.kind,
                    "family": o.family,
                    "severity": o.severity,
                    "status": o.status,
                    **{k: v for k, v in asdict(o.result).items() if k != "status"},
                    "slice": o.slice,
                    "seconds": o.seconds,
                }
                for o in report.outcomes
            ],
        }
    )


def render(doc: dict) -> str:
    """A result document (`to_dict`) as indented JSON text (strict JSON: no NaN)."""
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def load(path: str | Path) -> dict:
    """Read a saved result.json back as its document, so any report can be re-rendered from it.

    Raises InputError (exit 2), one line naming the file, for a missing or unreadable file,
    text that is not JSON, JSON that is not a qa result, or another schema version.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: result file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the result: {exc}") from None
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise InputError(f"{p}: not a qa result: expected an object with schema_version")
    if doc["schema_version"] != SCHEMA_VERSION:
        raise InputError(
            f"{p}: schema_version {doc['schema_version']!r} is not supported "
            f"(this qa reads {SCHEMA_VERSION})"
        )
    _require(p, "", doc, DOC_KEYS)
    if not isinstance(doc["checks"], list):
        raise InputError(f"{p}: checks: expected a list, found {type(doc['checks']).__name__}")
    for i, check in enumerate(doc["checks"]):
        _require(p, f"checks[{i}].", check, CHECK_KEYS)
        if check["status"] not in STATUSES:
            raise InputError(f"{p}: checks[{i}].status: expected one of {STATUSES}")
    return doc


def _require(path: Path, where: str, obj: Any, keys: tuple[str, ...]) -> None:
    """Raise InputError unless `obj` is an object holding every key in `keys`."""
    if not isinstance(obj, dict):
        raise InputError(f"{path}: {where or 'document'}: expected an object")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise InputError(f"{path}: {where}{missing[0]}: missing from the result")


def jsonable(value: Any) -> Any:
    """Convert to JSON data: NumPy to Python numbers and lists, non-finite floats to None."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
