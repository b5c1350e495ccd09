"""The Python API: `qa.run(suite, checkpoint, ...)` gates a checkpoint from a notebook or a script.

    import qa
    result = qa.run("suites/release.yaml", "checkpoints/candidate.pt", baseline="deployed.pt")
    result.passed, result.exit_code, [c.name for c in result.failed]
    result                        # in Jupyter: the HTML report, inline
    result.save("reports")        # result.json, junit.xml, result.html, summary.md

`run` is `qa run` without the shell: the same options, the same evidence, cache and decision,
and `Result.to_dict()` is exactly the result.json document `qa run` writes. Where the command
prints and exits, the API returns and raises: bad input is `qa.errors.InputError` (its message
the one line `qa run` prints), any other exception a bug. Nothing is printed, and no report is
written unless asked (`save`, `save_html`).

Torch-free at import (qa.application, which imports torch, is imported by `run` itself), so
`import qa` and `qa.Result` stay instant.
"""

import copy
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from qa.cache import DEFAULT_DIR
from qa.errors import InputError
from qa.io import check_writable, write_text_atomic
from qa.precision import PRECISIONS
from qa.report import html as html_report
from qa.report import json_report, write_report_set

DEVICES = ("cpu", "cuda")
IFRAME_HEIGHT = "640px"  # the report scrolls inside; the frame's corner resizes it


@dataclass(frozen=True)
class Threshold:
    """The gate of a check: `metrics[metric] op value` decided it (op is ">=" or "<=")."""

    metric: str
    op: str
    value: float | None


@dataclass(frozen=True)
class Check:
    """One check's outcome, as result.json has it: `value` is the number compared with the
    threshold (None without a gate, or where it was not a finite number), `estimate` the point
    estimate and `interval` its (low, high) at the suite's confidence, when the check computed
    them (an end it has not, such as the ECE's lower, is None); `effect` is result.json's whole
    `effect` (regression facts, borderline; qa.checks.effect), {} for a check that did not judge.
    """

    name: str
    kind: str
    family: str
    status: str  # "pass" | "fail" | "warn" | "error" | "skip", severity applied
    severity: str  # "fail" (blocks) | "warn" (blocks only in a strict run)
    message: str
    value: float | None
    estimate: float | None
    interval: tuple[float | None, float | None] | None
    threshold: Threshold | None
    effect: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_document(cls, check: dict) -> "Check":
        """The Check of one entry of a result document's `checks`."""
        metrics, gate = check.get("metrics") or {}, check.get("threshold")
        threshold = Threshold(gate["metric"], gate["op"], gate["value"]) if gate else None
        effect = check.get("effect") or {}
        low, high = effect.get("low"), effect.get("high")
        return cls(
            name=check["name"],
            kind=check["kind"],
            family=check["family"],
            status=check["status"],
            severity=check["severity"],
            message=check["message"],
            value=metrics.get(threshold.metric) if threshold else None,
            estimate=effect.get("estimate"),
            interval=None if low is None and high is None else (low, high),
            threshold=threshold,
            effect=copy.deepcopy(effect),
        )


class Result:
    """What one `qa.run` decided: the verdict, each check, and the reports, from the result
    document (`to_dict`) that every property and report is read from."""

    def __init__(self, document: dict):
        self._document = document
        self.checks: list[Check] = [Check.from_document(c) for c in document["checks"]]

    @classmethod
    def load(cls, path: str | Path) -> "Result":
        """The Result of a saved result.json (a CI run's, say), to read or show in a notebook.
        InputError (one line) when the file is not a result this qa reads (json_report.load)."""
        return cls(json_report.load(path))

    @property
    def verdict(self) -> str:
        """ "pass", "fail" (a gate failed) or "error" (a gate could not be evaluated)."""
        return self._document["verdict"]

    @property
    def exit_code(self) -> int:
        """What `qa run` would exit with: 0 pass, 1 a gate failed or could not be evaluated."""
        return self._document["exit_code"]

    @property
    def passed(self) -> bool:
        """Whether every gate passed (exit code 0)."""
        return self.exit_code == 0

    @property
    def failed(self) -> list[Check]:
        """The checks that kept the run from passing: status fail or error, and warn in a
        strict run. Empty exactly when `passed`."""
        blocking = {"fail", "error", *(("warn",) if self._document["strict"] else ())}
        return [c for c in self.checks if c.status in blocking]

    def to_dict(self) -> dict:
        """The result document, exactly what `qa run` writes to result.json (a copy)."""
        return copy.deepcopy(self._document)

    def html(self) -> str:
        """The HTML report page, the same as result.html."""
        return html_report.render(self._document)

    def save_html(self, path: str | Path) -> Path:
        """Write the HTML report (result.html's page) to `path`, atomically; return the path.

        InputError (one line) when `path` is a folder or its folder cannot be written.
        """
        check_writable(path, "save_html")
        write_text_atomic(path, self.html())
        return Path(path)

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the report set `qa run --out` writes (result.json, junit.xml, result.html,
        summary.md) under `out_dir`, replaced together or not at all; return the paths by
        format. InputError (qa.report.ReportWriteError, one line) when it cannot be written."""
        check_writable(out_dir, "save", folder=True)
        return write_report_set(self._document, out_dir)

    def _repr_html_(self) -> str:
        """The report inline in Jupyter, in an iframe: the page is a whole document with its
        own styles and script, which a fragment would let loose on the notebook's page. The
        sandbox runs the page's filter script in an origin of its own, away from the notebook;
        the white background keeps the page's dark text readable in a dark notebook theme."""
        return (
            f'<iframe srcdoc="{escape(self.html(), quote=True)}" '
            f'sandbox="allow-scripts" title="qa report: {escape(self._title())}" '
            f'style="width: 100%; height: {IFRAME_HEIGHT}; border: 1px solid #ddd; '
            'background: white; resize: vertical;"></iframe>'
        )

    def _title(self) -> str:
        return f"{self._document['suite']['name']}: {self.verdict.upper()}"

    def __repr__(self) -> str:
        tally = ", ".join(f"{n} {s}" for s, n in self._document["summary"].items() if n)
        return f"<qa.Result {self._title()} ({tally}), exit {self.exit_code}>"


def run(
    suite: str | Path,
    checkpoint: str | Path,
    *,
    baseline: str | Path | None = None,
    device: str = "cpu",
    precision: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    cache_dir: str | Path | None = DEFAULT_DIR,
    trust_checkpoint: bool = False,
    trust_plugins: bool = False,
    strict: bool = False,
    progress: bool = False,
    save_predictions: str | Path | None = None,
    rehash: bool = False,
) -> Result:
    """Gate `checkpoint` with the suite file `suite`, as `qa run SUITE CHECKPOINT` does.

    The options are `qa run`'s: `baseline` overrides the suite's; `device` "cpu" or "cuda";
    `precision` "fp32", "bf16" or "fp16" (None: the suite's); `batch_size` and `workers`
    (None: the suite's batch size, the device's default workers); `cache_dir` the view cache
    (None: no cache, every view computed again); `trust_checkpoint` allows formats that run
    code from the file; `trust_plugins` allows the suite's `plugins:`, modules it imports
    (they run code, qa.plugins); `strict` makes a warning fail; `progress` shows a bar on stderr;
    `save_predictions` writes every view's logits (.npz); `rehash` hashes the data again.

    Returns the Result; writes no report (see Result.save). Raises qa.errors.InputError, with
    the one line `qa run` would print, for unusable input: the suite, checkpoint, data or an
    option. Runs in this process only; shard a run over processes with `torchrun -m qa run`.
    """
    from qa.application import RunOptions, run_suite  # torch: kept out of `import qa`

    options = RunOptions(
        baseline=baseline,
        device=_choice(str(device), "device", DEVICES),  # a torch.device("cuda") too
        batch_size=_count(batch_size, "batch_size", 1),
        workers=_count(workers, "workers", 0),
        out=None,
        cache_dir=cache_dir,
        save_predictions_to=save_predictions,
        trust=trust_checkpoint,
        trust_plugins=trust_plugins,
        strict=strict,
        progress=progress,
        precision=None if precision is None else _choice(precision, "precision", PRECISIONS),
        rehash=rehash,
    )
    return Result(json_report.to_dict(run_suite(suite, checkpoint, options)))


def _choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    """`value` if one of `choices`, else InputError: `qa run`'s `--device` and `--precision`."""
    if value in choices:
        return value
    raise InputError(f"{name}: expected one of {', '.join(choices)}, found {value!r}")


def _count(value: int | None, name: str, least: int) -> int | None:
    """`value` if None or an integer >= least, else InputError: `qa run`'s argument checks,
    which also keep 0 from silently meaning the suite's batch size."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= least):
        return value
    kind = "positive" if least == 1 else "non-negative"
    raise InputError(f"{name}: expected a {kind} integer, found {value!r}")
