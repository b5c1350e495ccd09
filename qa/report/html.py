"""The HTML report: one self-contained page rendered from the JSON result (never from a run).

Everything is inline (CSS, SVG figures, thumbnails as data: URIs) and a Content-Security-Policy
forbids any request, so the page opens offline and prints. Only summaries, figures and the
gallery (a bounded number of small images, qa.gallery; templates/gallery.html.j2) go in:
per-sample detail stays in the JSON result, which keeps the page small at any eval size.

The banner names the checks that fail the run (fail and error, and warn in a strict run), and
the table lists them first (fmt.WORST_FIRST). Each row gives the estimate with its interval at
the run's confidence, the deciding comparison, and under the message a regression gate's
effect and a borderline decision's note, in the words of every other format (qa.report.fmt),
and under a per-slice gate's row one row per slice (worst first, qa.slicing),
with numbers rounded for people (full precision stays in result.json). Below 640 px (a phone)
the rows become cards of labelled lines and nothing is wider than the screen.
"""

from importlib.resources import files

from qa.report import figures
from qa.report.fmt import (
    SYMBOLS,
    WORST_FIRST,
    borderline_text,
    decision,
    effect_lines,
    interval_text,
    printable,
    regression_text,
    rounded,
    slice_name,
)

MAX_TABLE_ROWS = 25
MAX_THUMBNAILS = 12
MAX_HEATMAP_CLASSES = 40  # beyond, the confusion matrix is left to result.json


# Calibration errors read off the top-label bins; Brier and NLL are not, so they get no diagram.
RELIABILITY_METRICS = ("ece", "mce", "classwise_ece")


def _figures(check: dict) -> list[dict]:
    details, out = check.get("details") or {}, []
    if details.get("reliability") and _gated_metric(check) in RELIABILITY_METRICS:
        out.append(
            {
                "svg": figures.reliability_diagram(details["reliability"]),
                "caption": "Accuracy against confidence per bin; hatched: the gap to the diagonal.",
            }
        )
    out += [_curve(check, name, points) for name, points in (details.get("curves") or {}).items()]
    if _class_deltas(details.get("classes")):
        out.append(
            {
                "svg": figures.delta_bars(details["classes"]),
                "caption": "Recall delta per class (candidate - baseline); regressions marked.",
            }
        )
    metrics = check.get("metrics") or {}
    if "both_correct" in metrics:
        flips = [
            [metrics["both_correct"], metrics["negative_flips"]],
            [metrics["positive_flips"], metrics["both_wrong"]],
        ]
        out.append(
            {
                "svg": figures.heatmap(
                    flips, ["base ✓", "base ✗"], "Flip matrix", ["cand ✓", "cand ✗"], "candidate"
                ),
                "caption": "Rows: baseline right/wrong; columns: candidate right/wrong.",
            }
        )
    return out


def _gated_metric(check: dict) -> str | None:
    """The metric a gate compared, less its bound's suffix and `worst_` prefix (`ece_high`:
    `ece`; `worst_flip_rate_high`: `flip_rate`); None for a check without a gate."""
    threshold = check.get("threshold")
    if not threshold:
        return None
    name = threshold["metric"].removeprefix("worst_")
    return name.removesuffix("_low").removesuffix("_high")


def _curve(check: dict, name: str, points: list[dict]) -> dict:
    """One perturbation's severity curve: flip rates where the points carry them, else
    accuracies; the gate's threshold when it gates what is drawn."""
    measure = "flip_rate" if any("flip_rate" in p for p in points) else "accuracy"
    threshold = check["threshold"]["value"] if _gated_metric(check) == measure else None
    clean = (check.get("details") or {}).get("clean") if measure == "accuracy" else None
    words = measure.replace("_", " ")
    legend = ["candidate solid (circles)"]
    if any(p.get(f"baseline_{measure}") is not None for p in points):
        legend.append("baseline dashed (squares)")
    if threshold is not None:
        legend.append(f"threshold {rounded(threshold)} dotted")
        if (check.get("effect") or {}).get("compared") == "bound":  # the points are estimates
            side = "lower" if check["threshold"]["op"] == ">=" else "upper"
            legend[-1] += f" (the gate compares each view's {side} bound)"
    return {
        "svg": figures.severity_curves(
            points, f"{name}: {words} against severity", measure, clean, threshold
        ),
        "caption": f"{name}: {', '.join(legend)}.",
    }


def _class_deltas(rows) -> bool:
    """Whether `rows` are per-class deltas (what per_class_regression writes), for bars."""
    return (
        bool(rows)
        and isinstance(rows, list)
        and all(isinstance(r, dict) and {"class", "delta"} <= r.keys() for r in rows)
    )


def _table(details: dict) -> dict | None:
    """The first list of row-dicts in the details, as a capped table."""
    for key in ("classes", "families", "views", "flips", "issues", "failing_paths"):
        rows = details.get(key)
        if rows and isinstance(rows, list):
            if not isinstance(rows[0], dict):
                rows = [{"path": r} for r in rows]
            header = list(rows[0])
            body = [[rounded(r.get(h)) for h in header] for r in rows[:MAX_TABLE_ROWS]]
            more = len(rows) - len(body)
            return {"title": f"{key} ({len(rows)})", "header": header, "rows": body, "more": more}
    return None


def _slice_rows(check: dict) -> list[dict]:
    """A per-slice gate's rows for the checks table, worst status first, at most
    MAX_TABLE_ROWS: each slice's name, size, level, estimate, decision and message."""
    rows = sorted(check.get("slices") or [], key=lambda r: WORST_FIRST.index(r["status"]))
    return [
        {
            "name": slice_name(check, r),
            "status": r["status"],
            "n": rounded(r["n"]),
            "level": f"{r['confidence'] * 100:g}%" if r.get("confidence") else "",
            "interval": interval_text(r),
            "decision": decision(r),
            "message": r["message"],
        }
        for r in rows[:MAX_TABLE_ROWS]
    ]


def _captioned(details: dict) -> list[dict]:
    """The thumbnails, each captioned "given → suggested" when a row of details["issues"]
    (label_issues) names its path with those labels."""
    issues = details.get("issues")
    rows = [r for r in issues if isinstance(r, dict)] if isinstance(issues, list) else []
    captions = {r.get("path"): f"{r.get('given')} → {r.get('suggested')}" for r in rows}
    return [
        {**t, "caption": captions.get(t.get("path"))} if isinstance(t, dict) else t
        for t in details.get("thumbnails") or []
    ]


def _check_view(check: dict, index: int) -> dict:
    metrics, threshold = check.get("metrics") or {}, check.get("threshold")
    details, effect = check.get("details") or {}, check.get("effect") or {}
    ranged = effect.get("low") is not None or effect.get("high") is not None
    return {
        **check,
        "anchor": f"check-{index}",
        "decision": decision(check),
        "decision_value": rounded(metrics.get(threshold["metric"])) if threshold else "",
        "threshold_value": rounded(threshold["value"]) if threshold else "",
        "interval": interval_text(check),
        # the level of the interval's bounds, as effect_lines words it
        "level": f"{effect['confidence'] * 100:g}%" if ranged and effect.get("confidence") else "",
        "notes": [t for t in (regression_text(check), borderline_text(check)) if t],
        "effect_lines": effect_lines(check),
        "borderline": bool(effect.get("borderline")),
        "figures": _figures(check),
        "table": _table(details),
        "slice_rows": _slice_rows(check),
        "slices_more": max(len(check.get("slices") or []) - MAX_TABLE_ROWS, 0),
        "thumbnails": _captioned(details)[:MAX_THUMBNAILS],
        "metrics_fmt": [(k, rounded(v)) for k, v in metrics.items()],
    }


def _failing_statuses(doc: dict) -> set[str]:
    """The statuses that fail a run, which the banner names: fail and error, and warn in a
    strict run."""
    return {"fail", "error"} | ({"warn"} if doc.get("strict") else set())


def render(doc: dict) -> str:
    """The report page for a result document (schema version 1 or 2)."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(
        autoescape=select_autoescape(default=True),
        loader=PackageLoader("qa.report", "templates"),  # for the partials the page includes
        trim_blocks=True,
        lstrip_blocks=True,
        # every value printed is made printable (a lone surrogate could not even be written);
        # the figures are markup already, made printable as they were built
        finalize=lambda value: value if isinstance(value, Markup) else printable(value),
    )
    template = env.from_string(
        files("qa.report").joinpath("templates/report.html.j2").read_text("utf-8")
    )
    ordered = sorted(doc["checks"], key=lambda c: WORST_FIRST.index(c["status"]))
    checks = [_check_view(c, i) for i, c in enumerate(ordered, 1)]
    overview = doc.get("overview") or {}
    matrix = overview.get("confusion_matrix")
    # A matrix of k classes is k^2 cells: at ImageNet's 1,000 classes, 115 MB of SVG.
    overview_svg = (
        figures.heatmap(matrix, overview["class_names"])
        if matrix and len(matrix) <= MAX_HEATMAP_CLASSES
        else ""
    )
    return template.render(
        doc=doc,
        checks=checks,
        failing=[c for c in checks if c["status"] in _failing_statuses(doc)],
        statuses=[s for s in WORST_FIRST if any(c["status"] == s for c in checks)],
        families=sorted({c["family"] for c in checks}),
        symbols=SYMBOLS,
        overview_svg=overview_svg,
        undrawn_classes=len(matrix) if matrix and not overview_svg else 0,
    )
