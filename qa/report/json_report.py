"""The JSON report (`result.json`): every decision of a run, with the numbers to redo it by hand.

Schema, version 2 (a change that removes or renames a field bumps `schema_version`; version 2
added `error` and the error document; `load` reads versions 1 and 2):

    schema_version  2
    suite           {"name": str, "path": str}
    verdict         "pass" | "fail" | "error"   ("error": no gate failed, one could not be
                    evaluated; or the run stopped on an error, see `error`)
    exit_code       0 (pass) | 1 (gate failed or not evaluated) | 2 (bad input) | 3 (internal
                    error): 2 and 3 only in an error document
    strict          bool: whether a `warn` counted as a failure
    started, finished   ISO 8601 UTC timestamps; duration  seconds (float)
    checkpoint      {"path", "sha256" (of the file's bytes), "arch", "class_names" (index order),
                     "preprocessing", "temperature", "provenance" (plain-data summary: config,
                     metrics, versions, data_fingerprint {digest, n_files, ...})}
    baseline        the same for the baseline, or null
    environment     {"python", "torch", "torchvision", "qa", "platform", "device", "precision"
                    ("fp32" | "bf16" | "fp16", the forward pass's; absent from results written
                    before it was recorded, which were fp32, and from error documents),
                    "world_size" (processes of a sharded run, qa.distributed), "plugins" (the
                    suite's plugin modules, qa.plugins: [{"module", "file", "sha256" of its
                    code}], [] for none; absent from older results and error documents)}
    overview        {"class_names", "confusion_matrix" (rows: true class, columns: predicted),
                     "n"} of the candidate on clean eval, for the report's figures; {} if none
    gallery         images to look at (qa.gallery), each a small data: URI ("data:image/png;..."
                    or "data:image/jpeg;..."); every section is {"total": how many there are,
                    "shown": the ones embedded}, absent when it has none ({} for a run with
                    no images; the key is absent from error documents and older results):
        confident_mistakes  shown: {"id", "label", "predicted", "confidence" (softmax maximum
                            of the temperature-scaled logits), "data_uri"}, most confident
                            first, of the candidate on clean eval
        negative_flips      shown: {"id", "label", "baseline", "candidate" (predictions),
                            "data_uri"} in sample order; "listed_in": the negative_flip_rate
                            check whose details list every flip, or null
        perturbations       shown: {"perturbation", "id", "label", "images": [{"severity" (0:
                            clean, then 1-5), "data_uri", "predicted" (the candidate's, where
                            the run computed that view)}]}: one eval image as the model saw it
        pairs               shown: {"check", "kind", "distance" (perceptual-hash bits, or null),
                            "images": [{"path", "split", "data_uri"}, the file it matched]}
    error           null when the run finished; else {"kind": "input" | "internal", "message":
                    the one line `qa run` printed}
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
        effect                  how big the effect is (qa.checks.effect), {} for a check that
                                did not judge: "estimate", "low", "high" (its interval at
                                "confidence", each end a one-sided bound; null where none),
                                "value" (the compared number), "compared" ("bound" | "point"),
                                "op", "threshold"; for a regression gate "measure" (what both
                                models measured, e.g. "accuracy"), "candidate", "baseline",
                                "delta", "delta_low", "delta_high", "mde" (null elsewhere);
                                "n"; "borderline" (the interval holds the threshold) and
                                "more_samples" (about how many more samples would settle a
                                borderline decision, null if that cannot be said). Absent
                                from results written before it was added
        slices                  a per-slice gate's rows (`slices: {column}` or slice_gap,
                                qa.slicing), null for any other check: one per value of the
                                column, {"value", "n", "status", "confidence" (the Holm
                                level it was judged at; null for a slice under min_size,
                                not judged, status "skip"), "message", "metrics",
                                "threshold", "effect"}; the check's own metrics, threshold
                                and effect are its worst slice's, with "slice_column",
                                "worst_slice", "slices", "slices_failed", "slices_skipped"
        slice                   {"column", "equals" | "in"} the check was restricted to, or null
        seconds                 time the check took

An error document (`error_document`) is what a run that stopped with exit 2 or 3 leaves, so
that no report of an earlier run survives it: verdict "error", the exit code, `error`, suite
name = the suite file's stem, checkpoint {"path"} only, baseline null, overview {}, and one
check, `qa run` (kind and family "run", status "error", the message), so that JUnit and the
other reports show an errored test rather than an empty, green suite.

NumPy scalars and arrays are written as numbers and lists; NaN and infinities (not valid JSON)
are written as null.
"""

import json
import math
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

import qa
from qa.checks import STATUSES
from qa.errors import ExitCode, InputError
from qa.result import RunReport, now
from qa.suite_errors import dotted, found, problems

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
ERROR_CHECK = "qa run"


def to_dict(report: RunReport) -> dict:
    """The report as a schema-version-2 document (see the module docstring)."""
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
            "gallery": report.gallery,
            "error": None,
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


def error_document(
    suite_path: str,
    checkpoint_path: str,
    exit_code: int,
    message: str,
    *,
    started: str,
    duration: float,
    strict: bool,
    device: str,
) -> dict:
    """The document of a run that stopped with exit 2 (bad input) or 3 (internal error).

    Written in place of the reports so that none of an earlier run survives; `message` is
    the one line the command printed. Needs no torch: the error may be that it cannot load.
    """
    kind = "input" if exit_code == ExitCode.BAD_INPUT else "internal"
    check = {
        "name": ERROR_CHECK,
        "kind": "run",
        "family": "run",
        "severity": "fail",
        "status": "error",
        "message": message,
        "metrics": {},
        "threshold": None,
        "details": {"error": kind},
        "slice": None,
        "seconds": duration,
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "suite": {"name": Path(suite_path).stem, "path": str(suite_path)},
        "verdict": "error",
        "exit_code": int(exit_code),
        "strict": strict,
        "started": started,
        "finished": now(),
        "duration": duration,
        "checkpoint": {"path": str(checkpoint_path)},
        "baseline": None,
        "environment": {
            "python": platform.python_version(),
            "qa": qa.__version__,
            "platform": platform.platform(),
            "device": device,
        },
        "overview": {},
        "error": {"kind": kind, "message": message},
        "summary": {s: int(s == "error") for s in STATUSES},
        "checks": [check],
    }


def render(doc: dict) -> str:
    """A result document (`to_dict`) as indented JSON text (strict JSON: no NaN)."""
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def load(path: str | Path) -> dict:
    """Read a saved result.json back as its document, so any report can be re-rendered from it.

    Raises InputError (exit 2), one line naming the file, for a missing or unreadable file,
    text that is not JSON, JSON that is not a qa result, a schema version this qa does not
    read, or a key the reports need that is missing or of the wrong type.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: result file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InputError(f"{p}: not a qa result: JSON nested too deeply") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the result: {exc}") from None
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise InputError(
            f"{p}: not a qa result: expected an object with schema_version, found {found(doc)}"
        )
    version = doc["schema_version"]
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise InputError(
            f"{p}: schema_version: expected one of {READABLE_VERSIONS} (what this qa reads), "
            f"found {found(version)}"
        )
    # here, not at import: the document's 23 models cost every run that only writes one
    from pydantic import ValidationError

    from qa.report.document import ResultDocument

    try:
        ResultDocument.model_validate(doc)
    except ValidationError as exc:
        at, message = problems(exc, ResultDocument, (), doc)[0]
        raise InputError(f"{p}: {dotted(at)}: {message}") from None
    return doc


def jsonable(value: Any) -> Any:
    """Convert to JSON data: NumPy to Python numbers and lists, non-finite floats to None."""
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
