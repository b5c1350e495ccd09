"""The terminal report: a rich table, one row per check, with the numbers that decided it.

Rendered from the JSON result, failing rows first. Each row shows the status (coloured), the
check, the point estimate with its interval, the deciding comparison (`value op
threshold`) and the message, under it the regression facts (both models, the delta with its
interval, the MDE) and a borderline decision's note (qa.report.fmt.effect_lines); below 110
columns the numbers move into the message's cell. A one-line verdict follows. Every cell is a rich
`Text`, never markup: a check or class named `[/x]` or `[bold red]` prints as written, and
control characters print as escapes (fmt.printable). Tested by rendering into
`Console(file=io.StringIO(), width=120, color_system=None)`.
"""

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from qa.report.fmt import (
    WORST_FIRST,
    decision,
    effect_lines,
    interval_text,
    printable,
    reduced_precision,
)

NARROW = 110
STYLES = {"pass": "green", "fail": "red", "warn": "yellow", "error": "magenta", "skip": "dim"}
VERDICT_WORDS = {
    "pass": "PASS: every gate passed",
    "fail": "FAIL: a gate failed",
    "error": "ERROR: a gate could not be evaluated",
}


def render(doc: dict) -> str:
    """The terminal report as plain text, 120 columns wide (`qa report --format terminal`)."""
    return plain_text(show, doc)


def plain_text(show_fn, data, width: int = 120) -> str:
    """What `show_fn(data, console)` prints, as plain text `width` columns wide: how every
    terminal view (the report, `qa diff`, `qa history`) is saved to a file."""
    buffer = io.StringIO()
    show_fn(data, Console(file=buffer, width=width, color_system=None))
    return buffer.getvalue()


def show(doc: dict, console: Console) -> None:
    """Print the table of checks, failing rows first, and the verdict line of a result
    document to `console`."""
    table = Table(
        title=_text(
            f"qa {doc['suite']['name']}: {(doc['checkpoint'] or {}).get('path')}", "table.title"
        ),
        title_justify="left",
    )
    # Below NARROW columns the numbers join the message's cell, so that nothing is cut at 80
    # columns (rich's width when piped): every cell folds, none is clipped.
    wide = console.width >= NARROW
    columns = ("status", "check", "estimate", "decision") if wide else ("status", "check")
    for column in columns:
        table.add_column(column, no_wrap=column == "status", overflow="fold", max_width=28)
    table.add_column("result" if not wide else "message", ratio=1, overflow="fold")
    for c in sorted(doc["checks"], key=lambda c: WORST_FIRST.index(c["status"])):
        lines = effect_lines(c)
        cells = {
            "status": Text(c["status"].upper(), style=STYLES.get(c["status"], "")),
            "check": _text(f"{c['name']}{'' if c['severity'] == 'fail' else ' (warn)'}"),
            "estimate": _text(interval_text(c)),
            "decision": _text(decision(c)),
        }
        # the message, then what the narrow layout has no column for
        extra = lines[1:] if wide else lines
        table.add_row(*(cells[k] for k in columns), _text("\n".join([c["message"], *extra])))
    console.print(table)
    console.print(verdict_line(doc))


def verdict_line(doc: dict) -> Text:
    """One line: the verdict, the status counts, the exit code, the run time and, below fp32,
    the precision ("at bf16")."""
    counts = doc["summary"]
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)  # the JSON summary's order
    words = VERDICT_WORDS.get(doc["verdict"], doc["verdict"])
    if doc.get("error"):  # an error document: the run stopped before any gate was decided
        words = f"ERROR: the run stopped ({doc['error']['kind']} error)"
    low = reduced_precision(doc)
    at = f" at {low}" if low else ""
    return Text(
        printable(f"{words} ({tally}) - exit {doc['exit_code']} in {doc['duration']:.1f}s{at}"),
        style=f"bold {STYLES.get(doc['verdict'], '')}",
    )


def _text(value, style: str = "") -> Text:
    """User-derived text as a rich Text: printed literally, never read as markup."""
    return Text(printable(value), style=style)
