"""`qa history DIR_OR_FILE...`: each check's compared value across saved runs, oldest first.

A FILE is read as a result document whatever its name; a DIR stands for every file named
`result.json` in it or in any folder below it (symbolic links to folders are not followed), so
a folder of archived report sets (`reports/2026-11-29/result.json`, ...) reads as one history.
The same file named twice counts once. Runs are ordered by `started` (then by path).

The table is check × run: the first row is each run's verdict (a run stopped by exit 2 or 3,
an error document, shows its one-line error there and no checks), then one row per check, in
the newest run's order and then the checks only older runs had, each cell the status symbol
and the compared value (qa.report.runs). The HTML page adds a trend per check: an inline SVG
of the value across the runs (the gate's threshold dashed) over a strip of status marks.
"""

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from qa.errors import InputError
from qa.report import json_report
from qa.report.fmt import SYMBOLS, printable, rounded
from qa.report.markdown import code_span, literal
from qa.report.runs import RunInfo, compared_value, finite, html_page, load_run, started_at
from qa.report.terminal import STYLES, plain_text

RESULT_FILE = "result.json"
# The trend's geometry (px): one STEP per run, the value plot above a strip of status marks.
LEFT, STEP, TOP, PLOT, STRIP = 56, 28, 8, 44, 10


@dataclass(frozen=True)
class Cell:
    """One check in one run."""

    status: str
    value: str  # the compared value (fmt.number), or the status for a check without a gate
    number: float | None  # the compared value when it is a number, for the trend
    threshold: float | None
    message: str

    def __str__(self) -> str:
        return f"{SYMBOLS[self.status]} {self.value}"


@dataclass(frozen=True)
class Run:
    """One saved run: who it was, and when it started (UTC, to the second)."""

    info: RunInfo
    when: str

    @property
    def verdict(self) -> str:
        """The verdict cell: symbol and verdict, and the error of an error document."""
        error = f": {self.info.error}" if self.info.error else ""
        return f"{SYMBOLS[self.info.verdict]} {self.info.verdict}{error}"


@dataclass(frozen=True)
class Line:
    """One check across the runs; a cell is None where that run had no such check."""

    name: str
    cells: list[Cell | None]


@dataclass(frozen=True)
class History:
    """The runs, oldest first, and one Line per check."""

    runs: list[Run]
    lines: list[Line]


def find_results(paths: list[str]) -> list[Path]:
    """The result files `paths` name (see the module docstring), each once, in argument order.
    A folder holding none is bad input (InputError)."""
    found: dict[Path, Path] = {}
    for path in map(Path, paths):
        hits = _walk(path) if path.is_dir() else [path]
        if not hits:
            raise InputError(f"{path}: no {RESULT_FILE} in this folder or below it")
        for hit in hits:
            found.setdefault(hit.resolve(), hit)
    return list(found.values())


def _walk(folder: Path) -> list[Path]:
    def refuse(error: OSError):
        raise InputError(f"{error.filename}: cannot list the folder: {error.strerror}")

    hits = []
    for root, dirs, files in os.walk(folder, onerror=refuse):
        dirs.sort()
        if RESULT_FILE in files:
            hits.append(Path(root) / RESULT_FILE)
    return hits


def load(paths: list[str]) -> History:
    """Read every result file `paths` name (InputError, one line, on any), ordered by start."""
    docs = [(path, load_run(path)) for path in find_results(paths)]
    timed = sorted(((started_at(doc, p), str(p), p, doc) for p, doc in docs), key=lambda t: t[:2])
    runs = [Run(RunInfo.of(p, doc), _when(t)) for t, _, p, doc in timed]
    checks = [_checks(doc) for *_, doc in timed]
    names = list(dict.fromkeys(name for run in reversed(checks) for name in run))
    lines = [Line(printable(n), [run.get(n) for run in checks]) for n in names]
    return History(runs, lines)


def _when(started: datetime.datetime) -> str:
    return started.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _checks(doc: dict) -> dict[str, Cell]:
    """The run's checks by name; an error document's stand-in check is its verdict cell."""
    return {
        c["name"]: _cell(c)
        for c in doc["checks"]
        if not (doc.get("error") and c["name"] == json_report.ERROR_CHECK)
    }


def _cell(check: dict) -> Cell:
    value, threshold = compared_value(check), check.get("threshold")
    return Cell(
        status=check["status"],
        value=printable(rounded(value)) if threshold else check["status"],
        number=finite(value),
        threshold=finite(threshold["value"]) if threshold else None,
        message=printable(check["message"]),
    )


def legend(h: History) -> list[str]:
    """One line per run: its column, start, result file, models and suite."""
    return [
        f"#{i} {run.when} UTC  {run.info.file}  {run.info.models()}  suite {run.info.suite}"
        for i, run in enumerate(h.runs, 1)
    ]


# ---- terminal -------------------------------------------------------------------------------


def show(h: History, console: Console) -> None:
    """Print the runs and the check × run table to a rich console (Text cells, never markup)."""
    for line in legend(h):
        console.print(Text(line))
    table = Table()
    table.add_column("check", overflow="fold")
    for i, run in enumerate(h.runs, 1):
        table.add_column(Text(f"#{i}\n{run.when[:10]}"), overflow="fold")
    table.add_row(
        Text("verdict", style="bold"),
        *(Text(r.verdict, style=STYLES.get(r.info.verdict, "")) for r in h.runs),
    )
    for line in h.lines:
        table.add_row(
            Text(line.name),
            *(Text(str(c), style=STYLES.get(c.status, "")) if c else Text("") for c in line.cells),
        )
    console.print(table)


def _terminal(h: History) -> str:
    return plain_text(show, h)


# ---- markdown -------------------------------------------------------------------------------


def _markdown(h: History) -> str:
    lines = [f"### qa history: {len(h.runs)} runs, oldest first", ""]
    for i, run in enumerate(h.runs, 1):
        digest = f" sha256 {code_span(run.info.sha256)}" if run.info.sha256 else ""
        lines.append(
            f"- **#{i}** {literal(run.when)} UTC · {code_span(run.info.checkpoint)}{digest} "
            f"· suite {literal(run.info.suite)} · {code_span(run.info.file)}"
        )
    header = ["check", *(f"#{i}" for i in range(1, len(h.runs) + 1))]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = [["verdict", *(r.verdict for r in h.runs)]]
    rows += [[line.name, *(str(c) if c else "" for c in line.cells)] for line in h.lines]
    lines += ["| " + " | ".join(literal(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ---- HTML -----------------------------------------------------------------------------------


def trend(line: Line, runs: list[Run]) -> dict:
    """The trend figure's geometry, numbers only (the template writes the SVG, escaping every
    title): the value polyline, the threshold's, one point per numeric value and one status
    mark per run, each at its run's column; the threshold is a dash per run (it may change)."""
    cells = line.cells
    xs = [LEFT + STEP * (i + 0.5) for i in range(len(cells))]
    known = [c.number for c in cells if c and c.number is not None]
    known += [c.threshold for c in cells if c and c.threshold is not None]
    lo, hi = (min(known), max(known)) if known else (0.0, 0.0)

    def y(v: float) -> float:
        return TOP + PLOT / 2 if hi == lo else TOP + (hi - v) / (hi - lo) * PLOT

    points = [
        (round(x, 1), round(y(c.number), 1), c.status, f"#{i} {r.when}: {c.value} ({c.status})")
        for i, (x, c, r) in enumerate(zip(xs, cells, runs, strict=True), 1)
        if c and c.number is not None
    ]
    marks = [
        (x, c.status if c else "", f"#{i}: {c.status if c else 'absent'}")
        for i, (x, c) in enumerate(zip(xs, cells, strict=True), 1)
    ]
    limits = [
        (x - STEP / 2 + 3, x + STEP / 2 - 3, y(c.threshold))
        for x, c in zip(xs, cells, strict=True)
        if c and c.threshold is not None
    ]
    return {
        "width": LEFT + STEP * len(cells) + 4,
        "height": TOP + PLOT + 6 + STRIP + 4,
        "strip": TOP + PLOT + 6,
        "line": " ".join(f"{x},{v}" for x, v, *_ in points) if len(points) > 1 else "",
        "limits": [(round(a, 1), round(b, 1), round(v, 1)) for a, b, v in limits],
        "points": points,
        "marks": marks,
        "labels": [(TOP + 4, rounded(hi)), (TOP + PLOT + 2, rounded(lo))] if known else [],
        "title": f"{line.name}: compared value across {len(cells)} runs",
    }


def _html(h: History) -> str:
    trends = [trend(line, h.runs) for line in h.lines]
    return html_page(
        "history.html.j2",
        h=h,
        legend=legend(h),
        rows=list(zip(h.lines, trends, strict=True)),
        symbols=SYMBOLS,
        geometry={"left": LEFT, "step": STEP, "strip": STRIP},
    )


RENDERERS = {"terminal": _terminal, "md": _markdown, "html": _html}


def render(h: History, fmt: str) -> str:
    """The history as text in `fmt`: terminal (120 columns, no colour), md or html."""
    return RENDERERS[fmt](h)
