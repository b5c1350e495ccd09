"""`qa diff OLD.json NEW.json`: what changed between two saved runs, and what to act on first.

Checks are matched by name (qa.report.runs). Each row shows the status and the compared value
(`metrics[threshold.metric]`) before and after, the change of that value when both runs
compared the same metric, and the gate when it changed. A row's change is one of:

    new failure     failing now and not before, including a check added to the suite that fails
    fixed           failing before, in both runs, and not failing now
    still failing   failing in both runs
    added           only in the new run, not failing
    removed         only in the old run (a check that failed and was removed is not "fixed")
    status changed  in both, not failing in either, e.g. pass -> warn
    ""              the same status

The verdict, the checkpoint paths and digests of both runs head every format. Nothing is
computed from logits: the two result documents are the whole input, as for `qa report`.
"""

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from qa.report.fmt import SYMBOLS, printable, rounded
from qa.report.markdown import code_span, literal
from qa.report.runs import (
    RunInfo,
    compared_value,
    failing,
    finite,
    gate_text,
    html_page,
    load_run,
)
from qa.report.terminal import NARROW, STYLES, plain_text

NEW_FAILURE, FIXED, STILL_FAILING = "new failure", "fixed", "still failing"
ADDED, REMOVED, STATUS_CHANGED = "added", "removed", "status changed"
LISTS = {NEW_FAILURE: "new failures", FIXED: "fixed"}  # listed above the table, with messages
COLUMNS = ("change", "check", "before", "after", "value before", "value after", "Δ", "gate")


@dataclass(frozen=True)
class Side:
    """One check as one run saw it."""

    status: str
    value: str  # the compared value, fmt.rounded; "—" without a gate
    metric: str  # threshold.metric; "" without a gate
    gate: str  # runs.gate_text
    message: str
    failing: bool
    number: float | None  # the compared value when it is a finite number, for the change


@dataclass(frozen=True)
class Row:
    """One check across the two runs; `old` or `new` is None where the check is absent."""

    name: str
    change: str
    old: Side | None
    new: Side | None

    @property
    def delta(self) -> str:
        """new - old of the compared value, when both runs compared the same metric."""
        old, new = self.old, self.new
        if not (old and new and old.metric == new.metric):
            return ""
        if old.number is None or new.number is None:
            return ""
        return f"{new.number - old.number:+.4g}"

    @property
    def gate(self) -> str:
        """The gate, or `before → after` when the threshold or its metric changed."""
        before, after = (s.gate if s else "" for s in (self.old, self.new))
        if self.old and self.new and before != after:
            return f"{before or '—'} → {after or '—'}"
        return after or before


@dataclass(frozen=True)
class Diff:
    """Two runs and their checks, row by row: the new run's checks in its order, then the
    checks only the old run had."""

    old: RunInfo
    new: RunInfo
    rows: list[Row]

    def named(self, change: str) -> list[Row]:
        """The rows whose change is `change`."""
        return [r for r in self.rows if r.change == change]


def load(old_path: str | Path, new_path: str | Path) -> Diff:
    """Read both result files (InputError, one line, on either) and compare them."""
    return diff(old_path, load_run(old_path), new_path, load_run(new_path))


def diff(old_path, old: dict, new_path, new: dict) -> Diff:
    """The Diff of two result documents saved at `old_path` and `new_path`."""
    before = {c["name"]: _side(c, old) for c in old["checks"]}
    after = {c["name"]: _side(c, new) for c in new["checks"]}
    names = list(after) + [n for n in before if n not in after]
    rows = [
        Row(printable(n), _change(before.get(n), after.get(n)), before.get(n), after.get(n))
        for n in names
    ]
    return Diff(RunInfo.of(old_path, old), RunInfo.of(new_path, new), rows)


def _side(check: dict, doc: dict) -> Side:
    value = compared_value(check)
    return Side(
        status=check["status"],
        value=printable(rounded(value)) if check.get("threshold") else "—",
        metric=printable((check.get("threshold") or {}).get("metric", "")),
        gate=gate_text(check),
        message=printable(check["message"]),
        failing=failing(check, doc),
        number=finite(value),
    )


def _change(old: Side | None, new: Side | None) -> str:
    if old is None:
        return NEW_FAILURE if new.failing else ADDED
    if new is None:
        return REMOVED
    if new.failing:
        return STILL_FAILING if old.failing else NEW_FAILURE
    if old.failing:
        return FIXED
    return STATUS_CHANGED if old.status != new.status else ""


def verdict_change(d: Diff) -> str:
    """`FAIL → PASS (exit 1 → 0)`, or `PASS, unchanged (exit 0)`."""
    old, new = d.old, d.new
    if old.verdict == new.verdict:
        return f"{new.verdict.upper()}, unchanged (exit {new.exit_code})"
    return f"{old.verdict.upper()} → {new.verdict.upper()} (exit {old.exit_code} → {new.exit_code})"


def _status(side: Side | None) -> str:
    return f"{SYMBOLS[side.status]} {side.status}" if side else "absent"


def _cells(r: Row) -> tuple[str, ...]:
    """A row's cells in every format's column order (COLUMNS)."""
    values = (r.old.value if r.old else "", r.new.value if r.new else "")
    return (r.change, r.name, _status(r.old), _status(r.new), *values, r.delta, r.gate)


# ---- terminal -------------------------------------------------------------------------------


def show(d: Diff, console: Console) -> None:
    """Print the diff to a rich console: runs, verdict, new failures and fixes, then the table.
    Every cell is a Text (user text is never read as markup)."""
    for label, run in (("before", d.old), ("after", d.new)):
        console.print(Text(f"{label}: {run.file}  {run.suite}, started {run.started}"))
        console.print(Text(f"  {run.models()}" + (f"; error: {run.error}" if run.error else "")))
    style = f"bold {STYLES.get(d.new.verdict, '')}"
    console.print(Text(f"verdict: {verdict_change(d)}", style=style))
    for change, title in LISTS.items():
        rows = d.named(change)
        console.print(Text(f"{title}: {len(rows)}", style="bold" if rows else ""))
        for r in rows:
            console.print(Text(f"  {r.name}: {r.new.message}"))
    narrow = console.width < NARROW  # then before and after share a cell, and the gate goes
    table = Table()
    for column in ("change", "check", "status", "value", "Δ") if narrow else COLUMNS:
        wrap = column in ("check", "gate")
        table.add_column(column, no_wrap=not wrap, overflow="fold", min_width=12 if wrap else None)
    for r in d.rows:
        cells = _cells(r)
        if narrow:
            pairs = (f"{cells[2]} → {cells[3]}", f"{cells[4]} → {cells[5]}".strip())
            cells = (*cells[:2], *pairs, cells[6])
        style = {NEW_FAILURE: "red", FIXED: "green", STILL_FAILING: "red"}.get(r.change, "")
        table.add_row(Text(cells[0], style=style), *map(Text, cells[1:]))
    console.print(table)


def _terminal(d: Diff) -> str:
    return plain_text(show, d)


# ---- markdown -------------------------------------------------------------------------------


def _markdown(d: Diff) -> str:
    lines = [f"### qa diff: {literal(verdict_change(d))}", ""]
    for label, run in (("before", d.old), ("after", d.new)):
        digest = f" sha256 {code_span(run.sha256)}" if run.sha256 else ""
        base = f" against baseline {code_span(run.baseline)}" if run.baseline else ""
        error = f" · error: {literal(run.error)}" if run.error else ""
        lines.append(
            f"- **{label}**: {code_span(run.checkpoint)}{digest}{base} · suite {literal(run.suite)} "
            f"· started {literal(run.started)} · {code_span(run.file)}{error}"
        )
    lines.append("")
    for change, title in LISTS.items():
        rows = d.named(change)
        lines.append(f"**{title} ({len(rows)})**" + (":" if rows else ""))
        lines += [f"- {literal(r.name)}: {literal(r.new.message)}" for r in rows]
        lines.append("")
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in d.rows:
        lines.append("| " + " | ".join(literal(c) for c in _cells(r)) + " |")
    return "\n".join(lines) + "\n"


# ---- HTML -----------------------------------------------------------------------------------


def _html(d: Diff) -> str:
    return html_page(
        "diff.html.j2",
        d=d,
        verdict=verdict_change(d),
        symbols=SYMBOLS,
        new_failures=d.named(NEW_FAILURE),
        fixed=d.named(FIXED),
    )


RENDERERS = {"terminal": _terminal, "md": _markdown, "html": _html}


def render(d: Diff, fmt: str) -> str:
    """The diff as text in `fmt`: terminal (120 columns, no colour), md or html."""
    return RENDERERS[fmt](d)
