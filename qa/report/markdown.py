"""The Markdown summary (`summary.md`), for pull-request comments and `$GITHUB_STEP_SUMMARY`.

Rendered from the JSON result. Failing checks come first (then errors, warnings, passes,
skips): the reader of a pull request wants to know what blocks the merge.
"""

from qa.report.fmt import SYMBOLS, WORST_FIRST, decision


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(doc: dict) -> str:
    """A short Markdown summary: verdict line, one table row per check, worst first."""
    s = doc["summary"]
    ckpt = doc["checkpoint"] or {}
    lines = [
        f"### {SYMBOLS[doc['verdict']]} qa: {doc['suite']['name']} — **{doc['verdict'].upper()}**",
        "",
        f"`{ckpt.get('path')}` (sha256 `{str(ckpt.get('sha256', ''))[:12]}`)"
        + (f" against baseline `{doc['baseline']['path']}`" if doc.get("baseline") else "")
        + f" · {s['pass']} passed, {s['fail']} failed, {s['warn']} warned, {s['error']} errors"
        + f", {s['skip']} skipped · {doc['duration']:.1f} s",
        "",
        "| status | check | deciding number | message |",
        "|---|---|---|---|",
    ]
    for c in sorted(doc["checks"], key=lambda c: WORST_FIRST.index(c["status"])):
        lines.append(
            f"| {SYMBOLS[c['status']]} {c['status']} | {_cell(c['name'])} "
            f"| {_cell(decision(c))} | {_cell(c['message'])} |"
        )
    return "\n".join(lines) + "\n"
