"""The terminal report: a rich table, one row per check, with the numbers that decided it.

Rendered from the JSON result. Each row shows the status (coloured), the check, its family,
the deciding comparison (`value op threshold`), the interval around the point estimate when
the check computed one, and the message; a one-line verdict follows. Every cell is a rich
`Text`, never markup: a check or class named `[/x]` or `[bold red]` prints as written, and
control characters print as escapes (fmt.printable). Tested by rendering into
`Console(file=io.StringIO(), width=120, color_system=None)`.
"""

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from qa.report.fmt import decision, number, printable, reduced_precision

NARROW = 110
STYLES = {"pass": "green", "fail": "red", "warn": "yellow", "error": "magenta", "skip": "dim"}
VERDICT_WORDS = {
    "pass": "PASS: every gate passed",
    "fail": "FAIL: a gate failed",
    "error": "ERROR: a gate could not be evaluated",
}


def render(doc: dict) -> str:
    """The terminal report as plain text, 120 columns wide (`qa report --format terminal`)."""
    buffer = io.StringIO()
    show(doc, Console(file=buffer, width=120, color_system=None))
    return buffer.getvalue()


def show(doc: dict, console: Console) -> None:
    """Print the table of checks and the verdict line of a result document to `console`."""
    table = Table(
        title=_text(
            f"qa {doc['suite']['name']}: {(doc['checkpoint'] or {}).get('path')}", "table.title"
        ),
        title_justify="left",
    )
    # Below NARROW columns the family and interval give way, so the message stays readable.
    columns = ("status", "check", "family", "decision", "interval")
    if console.width < NARROW:
        columns = ("status", "check", "decision")
    for column in columns:
        table.add_column(column, no_wrap=column in ("status", "decision", "interval"))
    table.add_column("message", ratio=1, min_width=24, overflow="fold")
    for c in doc["checks"]:
        cells = {
            "status": Text(c["status"].upper(), style=STYLES.get(c["status"], "")),
            "check": _text(f"{c['name']}{'' if c['severity'] == 'fail' else ' (warn)'}"),
            "family": _text(c["family"]),
            "decision": _text(decision(c)),
            "interval": _text(interval(c)),
        }
        table.add_row(*(cells[k] for k in columns), _text(c["message"]))
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


def interval(check: dict) -> str:
    """The point estimate and its interval, e.g. "0.963 [0.9412, 0.978]", when computed."""
    threshold, metrics = check.get("threshold"), check.get("metrics") or {}
    if not threshold:
        return ""
    base = threshold["metric"].removesuffix("_low").removesuffix("_high")
    point, low, high = (metrics.get(k) for k in (base, f"{base}_low", f"{base}_high"))
    if point is None or low is None or high is None:
        return ""
    return f"{number(point)} [{number(low)}, {number(high)}]"
