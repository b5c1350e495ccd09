"""Number and decision formatting shared by every text renderer (terminal, HTML, Markdown).

One place, so that the same check reads the same in every report: 4 significant digits for
fractions, integers as written, `n/a` for a number the JSON result could not hold (NaN).
"""

import math

SYMBOLS = {"pass": "✓", "fail": "✗", "warn": "!", "error": "?", "skip": "–"}
WORST_FIRST = ("fail", "error", "warn", "pass", "skip")


def number(value) -> str:
    """A value as report text: `0.9412`, `260`, `n/a` (None, NaN), a short list or its length."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "n/a"
    if value is None:
        return "n/a"
    if isinstance(value, list):
        return f"[{len(value)} values]" if len(value) > 8 else ", ".join(number(v) for v in value)
    return str(value)


def decision(check: dict) -> str:
    """The comparison that decided a check, e.g. `0.9412 >= 0.9`; `—` for a check without a gate."""
    threshold = check.get("threshold")
    if not threshold:
        return "—"
    value = (check.get("metrics") or {}).get(threshold["metric"])
    return f"{number(value)} {threshold['op']} {number(threshold['value'])}"
