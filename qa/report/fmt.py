"""Number and decision formatting shared by every text renderer (terminal, HTML, Markdown).

One place, so that the same check reads the same in every report: 4 significant digits for
fractions, integers as written, `n/a` for a number the JSON result could not hold (NaN); and
text from the user (suite, check and class names, messages, paths) made printable the same way.
"""

import math
import re

SYMBOLS = {"pass": "✓", "fail": "✗", "warn": "!", "error": "?", "skip": "–"}
WORST_FIRST = ("fail", "error", "warn", "pass", "skip")
# Control characters but tab and newline, and what XML 1.0 or UTF-8 cannot hold: lone
# surrogates (undecodable bytes of a folder name) and the non-characters U+FFFE, U+FFFF.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def printable(text) -> str:
    """`text` as a string with every unprintable character written as a visible escape (`\\x1b`).

    Names and messages come from suites, folder names and saved results: an escape sequence
    must not drive the terminal, a NUL must not make junit.xml unparsable, and a lone
    surrogate must not make a report unwritable. Tab and newline are kept.
    """
    return _UNPRINTABLE.sub(_escape, str(text))


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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


def reduced_precision(doc: dict) -> str:
    """The run's precision when below fp32 ("bf16", "fp16"), else "": reports name it beside the
    verdict, as its logits differ from fp32's. Results that predate it were fp32."""
    value = (doc.get("environment") or {}).get("precision") or "fp32"
    return "" if value == "fp32" else printable(value)
