"""The Markdown summary (`summary.md`), for pull-request comments and `$GITHUB_STEP_SUMMARY`.

Rendered from the JSON result. The failing checks are named under the verdict and come first
in the table (then errors, warnings, passes, skips): the reader of a pull request wants to
know what blocks the merge. Each row gives the estimate with its interval, the deciding
comparison, and, under the message, a regression gate's effect, a borderline note and, for a
per-slice gate, a line per slice that did not pass.

Names, messages and paths come from suites, folder names and saved results, and GitHub renders
this file: every such string is written as literal text (`literal`, `code_span`), so a check named
`<img src=x onerror=...>` or `[click](https://...)` shows as written, and `|` or a newline
cannot break the table.
"""

import re

from qa.report.fmt import (
    SYMBOLS,
    WORST_FIRST,
    borderline_text,
    decision,
    interval_text,
    printable,
    reduced_precision,
    regression_text,
    slice_lines,
)

# Markdown punctuation that can start a link, image, emphasis, code span, math or table cell.
# An `_` between two letters or digits cannot (`per_class_recall` stays as written).
_MARKDOWN = re.compile(r"[\\`*\[\]|~$]|_(?![^\W_])|(?<![^\W_])_")


def literal(value) -> str:
    """User-derived text as one line of literal Markdown (safe in a table cell)."""
    text = printable(value).replace("\n", " ").replace("\t", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;")  # no tag, entity or autolink
    return _MARKDOWN.sub(lambda m: "\\" + m.group(), text)


def code_span(value) -> str:
    """User-derived text as a code span: fenced by more backticks than it holds, on one line."""
    text = printable(value).replace("\n", " ").replace("\t", " ")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render(doc: dict) -> str:
    """A short Markdown summary: verdict line, one table row per check, worst first."""
    s = doc["summary"]
    ckpt = doc["checkpoint"] or {}
    baseline = doc.get("baseline")
    low = reduced_precision(doc)  # below fp32, the precision is named beside the run time
    counts = (
        f"{s['pass']} passed, {s['fail']} failed, {s['warn']} warned, {s['error']} errors"
        f", {s['skip']} skipped"
    )
    lines = [
        f"### {SYMBOLS[doc['verdict']]} qa: {literal(doc['suite']['name'])} — "
        f"**{doc['verdict'].upper()}**",
        "",
        f"{code_span(ckpt.get('path'))}"
        + (f" (sha256 {code_span(str(ckpt['sha256'])[:12])})" if ckpt.get("sha256") else "")
        + (f" against baseline {code_span(baseline['path'])}" if baseline else "")
        + f" · {literal(counts)} · {doc['duration']:.1f} s"
        + (f" · {literal(low)}" if low else ""),
        "",
        "| status | check | estimate [interval] | decision | message |",
        "|---|---|---|---|---|",
    ]
    failing = [c["name"] for c in doc["checks"] if c["status"] in ("fail", "error")]
    if failing:
        lines[1:1] = ["", "Failing: " + ", ".join(code_span(name) for name in failing)]
    for c in sorted(doc["checks"], key=lambda c: WORST_FIRST.index(c["status"])):
        # the regression facts and a borderline note under the message, in the same cell
        # and, for a per-slice gate, a line per slice that did not pass
        texts = (c["message"], regression_text(c), borderline_text(c), *slice_lines(c))
        notes = [literal(t) for t in texts if t]
        lines.append(
            f"| {SYMBOLS[c['status']]} {c['status']} | {literal(c['name'])} "
            f"| {literal(interval_text(c))} | {literal(decision(c))} | {'<br>'.join(notes)} |"
        )
    return "\n".join(lines) + "\n"
