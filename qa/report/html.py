"""The HTML report: one self-contained page rendered from the JSON result (never from a run).

Everything is inline (CSS, SVG figures, thumbnails as data: URIs) and a Content-Security-Policy
forbids any request, so the page opens offline and prints. Only summaries, figures and the
gallery (a bounded number of small images, qa.gallery; templates/gallery.html.j2) go in:
per-sample detail stays in the JSON result, which keeps the page small at any eval size.
"""

from importlib.resources import files

from qa.report import figures
from qa.report.fmt import SYMBOLS, WORST_FIRST, decision, number, printable

MAX_TABLE_ROWS = 25
MAX_THUMBNAILS = 12
MAX_HEATMAP_CLASSES = 40  # beyond, the confusion matrix is left to result.json


def _figures(check: dict) -> list[dict]:
    details, out = check.get("details") or {}, []
    if details.get("reliability"):
        out.append(
            {
                "svg": figures.reliability_diagram(details["reliability"]),
                "caption": "Accuracy against confidence per bin; hatched: the gap to the diagonal.",
            }
        )
    for name, points in (details.get("curves") or {}).items():
        out.append(
            {
                "svg": figures.severity_curves(points, f"{name}: accuracy against severity"),
                "caption": f"{name}: candidate solid (circles), baseline dashed (squares).",
            }
        )
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


def _class_deltas(rows) -> bool:
    """Whether `rows` are per-class deltas (what per_class_regression writes), for bars."""
    return (
        bool(rows)
        and isinstance(rows, list)
        and all(isinstance(r, dict) and {"class", "delta"} <= r.keys() for r in rows)
    )


def _table(details: dict) -> dict | None:
    """The first list of row-dicts in the details, as a capped table."""
    for key in ("classes", "families", "views", "flips", "failing_paths"):
        rows = details.get(key)
        if rows and isinstance(rows, list):
            if not isinstance(rows[0], dict):
                rows = [{"path": r} for r in rows]
            header = list(rows[0])
            body = [[number(r.get(h)) for h in header] for r in rows[:MAX_TABLE_ROWS]]
            more = len(rows) - len(body)
            return {"title": f"{key} ({len(rows)})", "header": header, "rows": body, "more": more}
    return None


def _check_view(check: dict) -> dict:
    metrics, threshold = check.get("metrics") or {}, check.get("threshold")
    value = metrics.get(threshold["metric"]) if threshold else None
    details = check.get("details") or {}
    return {
        **check,
        "decision": decision(check),
        "decision_value": number(value),
        "figures": _figures(check),
        "table": _table(details),
        "thumbnails": (details.get("thumbnails") or [])[:MAX_THUMBNAILS],
        "metrics_fmt": [(k, number(v)) for k, v in metrics.items()],
    }


def render(doc: dict) -> str:
    """The report page for a schema-version-1 result document."""
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
    checks = [_check_view(c) for c in doc["checks"]]
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
        statuses=[s for s in WORST_FIRST if any(c["status"] == s for c in checks)],
        families=sorted({c["family"] for c in checks}),
        symbols=SYMBOLS,
        overview_svg=overview_svg,
        undrawn_classes=len(matrix) if matrix and not overview_svg else 0,
    )
