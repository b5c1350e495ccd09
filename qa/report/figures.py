"""Small inline SVG figures for the HTML report: heatmap, reliability diagram, curves, bars.

Written by hand: a plotting library (matplotlib) would add tens of megabytes of dependency and
embed fonts, for figures that are a few dozen rectangles and lines. Colours come from the
Okabe-Ito palette (distinguishable with colour-vision deficiency) and every series also
differs in dash pattern or marker, so figures read in greyscale too.
"""

import html
import math

from qa.report.fmt import printable, rounded

CANDIDATE, BASELINE, GAP = "#0072B2", "#E69F00", "#D55E00"
DASHES = {"candidate": "", "baseline": "6 4"}
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _escape(text) -> str:
    """Text for SVG markup: printable (fmt.printable), then HTML-escaped."""
    return html.escape(printable(text))


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_escape(title)}">'
        f"<title>{_escape(title)}</title>{''.join(body)}</svg>"
    )


def _axes(
    x0: int,
    y0: int,
    w: int,
    h: int,
    xlabel: str,
    ylabel: str,
    scale: tuple[float, float, list[float]] = (0.0, 1.0, [0.0, 0.5, 1.0]),
) -> list[str]:
    """Plot frame with a labelled, faintly ruled y tick at each of `scale`'s ticks.

    `scale` is (bottom, top, ticks) of the y axis: 0 to 1 by default (rates), or the range
    `_scale` fits to the data.
    """
    out = [f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#555"/>']
    for t in scale[2]:
        y = _y(t, y0, h, scale)
        out.append(
            f'<g class="ytick"><line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" '
            f'stroke="#eee"/><text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT}>'
            f"{t:g}</text></g>"
        )
    out.append(
        f'<text x="{x0 + w / 2}" y="{y0 + h + 30}" text-anchor="middle" {FONT}>{_escape(xlabel)}</text>'
    )
    out.append(
        f'<text x="{x0 - 34}" y="{y0 + h / 2}" text-anchor="middle" {FONT} '
        f'transform="rotate(-90 {x0 - 34} {y0 + h / 2})">{_escape(ylabel)}</text>'
    )
    return out


def _y(value: float, y0: int, h: int, scale: tuple[float, float, list[float]]) -> float:
    """The y pixel of `value` on an axis from scale[0] (bottom) to scale[1] (top)."""
    bottom, top = scale[0], scale[1]
    return y0 + h - (value - bottom) / (top - bottom) * h


def _scale(values: list[float]) -> tuple[float, float, list[float]]:
    """A y axis (bottom, top, ticks) within [0, 1] that holds `values` with a margin, on 3 to
    6 round ticks: accuracies between 0.93 and 0.97 get 0.9 to 1, not a flat line near 1."""
    low, high = min(values), max(values)
    pad = max(0.02, 0.1 * (high - low))
    low, high = max(0.0, low - pad), min(1.0, high + pad)
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5) if high - low <= 5 * s)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = [round(i * step, 10) for i in range(first, last + 1)]
    return ticks[0], ticks[-1], ticks


def heatmap(
    matrix: list[list[int]],
    labels: list[str],
    title: str = "Confusion matrix",
    columns: list[str] | None = None,
    across: str = "predicted",
) -> str:
    """Row-normalised heatmap (true class down, predicted across), counts printed in cells.

    Lightness alone encodes the rate (one hue), so it survives greyscale printing.
    """
    k = len(labels)
    columns = columns or labels
    cell = max(14, min(36, 420 // max(k, 1)))
    x0, y0 = 70, 30
    body = [
        f'<text x="{x0 + k * cell / 2}" y="14" text-anchor="middle" {FONT}>{_escape(across)}</text>'
    ]
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        y = y0 + i * cell
        body.append(
            f'<text x="{x0 - 4}" y="{y + cell / 2 + 4}" text-anchor="end" {FONT}>{_escape(labels[i][:10])}</text>'
        )
        for j, count in enumerate(row):
            rate = count / total
            light = 97 - 70 * rate
            body.append(
                f'<rect x="{x0 + j * cell}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="hsl(210,70%,{light:.0f}%)"><title>{_escape(labels[i])} as '
                f"{_escape(columns[j])}: {count} ({rate:.1%})</title></rect>"
            )
            if count and cell >= 20:
                ink = "#fff" if light < 55 else "#111"
                body.append(
                    f'<text x="{x0 + j * cell + cell / 2}" y="{y + cell / 2 + 4}" '
                    f'text-anchor="middle" fill="{ink}" {FONT}>{count}</text>'
                )
    for j, name in enumerate(columns):
        x = x0 + j * cell + cell / 2
        body.append(
            f'<text x="{x}" y="{y0 + k * cell + 14}" text-anchor="middle" {FONT}>{_escape(name[:6])}</text>'
        )
    return _svg(x0 + k * cell + 10, y0 + k * cell + 24, body, title)


def reliability_diagram(bins: list[dict], title: str = "Reliability diagram") -> str:
    """Accuracy against mean confidence per bin, bars sized by count, with the diagonal."""
    x0, y0, w, h = 50, 10, 260, 220
    body = _axes(x0, y0, w, h, "confidence", "accuracy")
    body.append(
        f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0}" stroke="#999" stroke-dasharray="4 3"/>'
    )
    for b in bins:
        if not b.get("count") or b.get("accuracy") is None:
            continue
        lo, hi = b["lo"], max(b["hi"], b["lo"] + 0.01)
        bx, bw = x0 + lo * w, (hi - lo) * w
        acc_h, conf_h = b["accuracy"] * h, b["confidence"] * h
        body.append(
            f'<rect x="{bx:.1f}" y="{y0 + h - acc_h:.1f}" width="{bw:.1f}" height="{acc_h:.1f}" '
            f'fill="{CANDIDATE}" fill-opacity="0.75" stroke="#fff"><title>confidence '
            f"{b['confidence']:.3f}, accuracy {b['accuracy']:.3f}, n={b['count']}</title></rect>"
        )
        top, bottom = sorted((y0 + h - acc_h, y0 + h - conf_h))
        body.append(
            f'<rect x="{bx:.1f}" y="{top:.1f}" width="{bw:.1f}" height="{bottom - top:.1f}" '
            f'fill="url(#hatch)" stroke="{GAP}" stroke-width="0.8"/>'
        )
    hatch = (
        '<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="4" stroke="{GAP}" '
        'stroke-width="1.5"/></pattern></defs>'
    )
    return _svg(x0 + w + 10, y0 + h + 40, [hatch, *body], title)


def severity_curves(
    points: list[dict],
    title: str,
    measure: str = "accuracy",
    clean: dict | None = None,
    threshold: float | None = None,
) -> str:
    """`measure` ("accuracy", "flip_rate") against severity: the candidate solid with circles,
    the baseline (points' `baseline_<measure>`) dashed with squares where the points carry it.

    `clean` ({"accuracy", "baseline_accuracy"}) starts each curve at severity 0 from the
    model's clean value; `threshold` is drawn as a dotted line. The y axis spans the values
    and the threshold, so a drop from 0.98 to 0.93 is visible and the threshold always shows.
    """
    x0, y0, w, h = 50, 10, 220, 160
    series = _series(points, measure, clean)
    first = 0 if any(pts[0][0] == 0 for pts in series.values()) else 1
    values = [v for pts in series.values() for _, v in pts]
    values += [threshold] if threshold is not None else []
    scale = _scale(values or [0.0, 1.0])
    label = measure.replace("_", " ")
    body = _axes(x0, y0, w, h, "severity (0: clean)" if first == 0 else "severity", label, scale)

    def x(s):
        return x0 + (s - first) / (5 - first) * w

    if threshold is not None:
        ty = _y(threshold, y0, h, scale)
        body.append(
            f'<line class="threshold" x1="{x0}" y1="{ty:.1f}" x2="{x0 + w}" y2="{ty:.1f}" '
            f'stroke="{GAP}" stroke-width="1.5" stroke-dasharray="2 3">'
            f"<title>threshold {rounded(threshold)}</title></line>"
        )
    for who, pts in series.items():
        colour = CANDIDATE if who == "candidate" else BASELINE
        xy = [(x(s), _y(v, y0, h, scale)) for s, v in pts]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in xy)
        body.append(
            f'<polyline class="{who}" points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="{DASHES[who]}"/>'
        )
        for (px, py), (s, v) in zip(xy, pts, strict=True):
            tip = f"<title>{who} {'clean' if s == 0 else f's{s}'}: {rounded(v)}</title>"
            body.append(
                f'<circle class="{who}" cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}">'
                f"{tip}</circle>"
                if who == "candidate"
                else f'<rect class="{who}" x="{px - 3:.1f}" y="{py - 3:.1f}" width="6" '
                f'height="6" fill="{colour}">{tip}</rect>'
            )
    for s in range(first, 6):
        body.append(f'<text x="{x(s)}" y="{y0 + h + 14}" text-anchor="middle" {FONT}>{s}</text>')
    return _svg(x0 + w + 10, y0 + h + 40, body, title)


def _series(points: list[dict], measure: str, clean: dict | None) -> dict[str, list]:
    """{"candidate": [(severity, value)], "baseline": [...]} of the points that carry a value,
    each from its clean value at severity 0 when `clean` has it; no baseline without points."""
    out = {}
    for who, key in (("candidate", measure), ("baseline", f"baseline_{measure}")):
        pts = [(p["severity"], p[key]) for p in points if p.get(key) is not None]
        if pts:
            start = (clean or {}).get(key)
            out[who] = ([(0, start)] if start is not None else []) + pts
    return out


def delta_bars(rows: list[dict], title: str = "Per-class recall delta") -> str:
    """Horizontal bars of candidate-minus-baseline per class; regressions hatched and marked."""
    bar, x0, w = 16, 80, 260
    mid = x0 + w / 2
    scale = (w / 2) / max(0.05, max((abs(r["delta"]) for r in rows), default=0.05))
    body = [f'<line x1="{mid}" y1="4" x2="{mid}" y2="{10 + len(rows) * (bar + 4)}" stroke="#555"/>']
    for i, r in enumerate(rows):
        y = 8 + i * (bar + 4)
        d = r["delta"]
        x, bw = (mid, d * scale) if d >= 0 else (mid + d * scale, -d * scale)
        fill = GAP if r.get("regressed") else CANDIDATE
        body.append(
            f'<text x="{x0 - 4}" y="{y + bar - 4}" text-anchor="end" {FONT}>{_escape(str(r["class"])[:10])}</text>'
        )
        body.append(
            f'<rect x="{x:.1f}" y="{y}" width="{max(bw, 0.5):.1f}" height="{bar}" fill="{fill}">'
            f"<title>{_escape(str(r['class']))}: {d:+.3f}</title></rect>"
        )
        mark = " ✗ regressed" if r.get("regressed") else ""
        body.append(f'<text x="{x0 + w + 4}" y="{y + bar - 4}" {FONT}>{d:+.3f}{mark}</text>')
    return _svg(x0 + w + 110, 16 + len(rows) * (bar + 4), body, title)
