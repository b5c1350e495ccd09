"""Number and decision formatting shared by every text renderer (terminal, HTML, Markdown).

One place, so that the same check reads the same in every report: numbers rounded for people
(`rounded`: 0.0037, 0.9593, 270; `number` keeps 4 significant digits for raw metrics), `n/a`
for a number the JSON result could not hold (NaN); a gate's effect (estimate, interval,
threshold, regression facts, borderline) in the same words everywhere (`effect_lines`); and
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
    return f"{rounded(value)} {threshold['op']} {rounded(threshold['value'])}"


def rounded(value) -> str:
    """A number for people: four decimals below 1 (0.0037, 0.9593, 0.15: trailing zeros go),
    four significant digits
    above (1.234, 270), whole numbers as written, tiny ones in two digits (3.2e-06), `n/a`
    for None and NaN. The JSON result keeps full precision."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return number(value)
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return f"{int(value):,}" if abs(value) < 1e15 else f"{value:.4g}"
    if not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1:
        return f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) >= 1e-3 else f"{value:.2g}"


def interval_text(check: dict) -> str:
    """The point estimate and its interval at the run's confidence, e.g. "0.963 [0.9412, 0.978]"
    ("0.08 [–, 0.12]" for a one-sided statistic); "" when the check computed none."""
    e = check.get("effect") or {}
    if not e:  # a result written before `effect`: the legacy `<metric>_low/_high` keys
        return _legacy_interval(check)
    if e.get("estimate") is None:
        return ""
    if e.get("low") is None and e.get("high") is None:
        return rounded(e["estimate"])
    low, high = (rounded(e[k]) if e.get(k) is not None else "–" for k in ("low", "high"))
    return f"{rounded(e['estimate'])} [{low}, {high}]"


def _legacy_interval(check: dict) -> str:
    threshold, metrics = check.get("threshold"), check.get("metrics") or {}
    if not threshold:
        return ""
    base = threshold["metric"].removesuffix("_low").removesuffix("_high")
    point, low, high = (metrics.get(k) for k in (base, f"{base}_low", f"{base}_high"))
    if point is None or low is None or high is None:
        return ""
    return f"{rounded(point)} [{rounded(low)}, {rounded(high)}]"


def regression_text(check: dict) -> str:
    """Both models' values, the delta with its interval and the MDE of a regression gate, e.g.
    "accuracy 0.9593 vs baseline 0.9815: delta -0.0222 [-0.0411, -0.0037], MDE 0.029"; ""
    for other gates."""
    e = check.get("effect") or {}
    if e.get("candidate") is None and e.get("baseline") is None:
        return ""
    text = (
        f"{e.get('measure') or 'value'} {rounded(e.get('candidate'))} vs baseline "
        f"{rounded(e.get('baseline'))}: delta {_signed(e.get('delta'))}"
    )
    if e.get("delta_low") is not None or e.get("delta_high") is not None:
        text += f" [{_signed(e.get('delta_low'))}, {_signed(e.get('delta_high'))}]"
    if e.get("mde") is not None:
        text += f", MDE {rounded(e['mde'])}"
    return text


def borderline_text(check: dict) -> str:
    """For a decision whose interval holds the threshold: "borderline: about 540 more samples
    would settle it" (or why none can be said); "" otherwise."""
    e = check.get("effect") or {}
    if not e.get("borderline"):
        return ""
    more = e.get("more_samples")
    if more is None:
        return "borderline: the estimate sits on the threshold"
    return f"borderline: about {more:,} more samples would settle it"


def effect_lines(check: dict) -> list[str]:
    """What every report says of a gate beyond its status: estimate with interval and
    threshold, the regression facts, borderline; one line each, those that apply."""
    e = check.get("effect") or {}
    first = interval_text(check)
    if first and e.get("threshold") is not None:
        ranged = e.get("low") is not None or e.get("high") is not None
        level = f" ({e['confidence'] * 100:g}%)" if ranged and e.get("confidence") else ""
        first = f"{first}{level}, threshold {e['op']} {rounded(e['threshold'])}"
    return [t for t in (first, regression_text(check), borderline_text(check)) if t]


def slice_name(check: dict, row: dict) -> str:
    """A slice of a per-slice gate as reports name it, "camera=B"."""
    return f"{(check.get('metrics') or {}).get('slice_column', 'slice')}={row['value']}"


def slice_lines(check: dict) -> list[str]:
    """One line per slice of a per-slice gate (qa.slicing) that did not pass, e.g.
    "✗ camera=B (n 40, at 95%): top-1 accuracy lower 95% bound 0.35 misses >= 0.8 (20/40)"."""
    lines = []
    for row in check.get("slices") or []:
        if row["status"] in ("fail", "error"):
            level = f", at {row['confidence'] * 100:g}%" if row.get("confidence") else ""
            lines.append(
                f"{SYMBOLS[row['status']]} {slice_name(check, row)} (n {row['n']}{level}): "
                f"{row['message']}"
            )
    return lines


def _signed(value) -> str:
    text = rounded(value)
    return f"+{text}" if isinstance(value, int | float) and value > 0 else text


def reduced_precision(doc: dict) -> str:
    """The run's precision when below fp32 ("bf16", "fp16"), else "": reports name it beside the
    verdict, as its logits differ from fp32's. Results that predate it were fp32."""
    value = (doc.get("environment") or {}).get("precision") or "fp32"
    return "" if value == "fp32" else printable(value)
