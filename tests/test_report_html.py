"""The HTML report: self-contained, one row per check, figures where the data calls for them."""

import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import qa.checks.calibration
import qa.checks.robustness  # noqa: F401
from qa.checks import REGISTRY
from qa.checks.effect import effect
from qa.evidence import BASELINE, CLEAN, Evidence, View
from qa.report import html


def _check(name, kind, family, status, metrics, threshold=None, details=None):
    return {
        "name": name,
        "kind": kind,
        "family": family,
        "severity": "fail",
        "status": status,
        "message": f"{name} message",
        "metrics": metrics,
        "threshold": threshold,
        "details": details or {},
        "slice": None,
        "seconds": 0.01,
    }


@pytest.fixture
def doc():
    flips = [
        {"id": f"img-{i}.png", "label": "1", "baseline": "1", "candidate": "7"} for i in range(3000)
    ]
    reliability = [
        {
            "lo": i / 10,
            "hi": (i + 1) / 10,
            "count": 5,
            "confidence": i / 10 + 0.05,
            "accuracy": i / 10,
        }
        for i in range(10)
    ]
    curves = {
        "gaussian_noise": [
            {"severity": s, "accuracy": 1 - s / 10, "baseline_accuracy": 1 - s / 8}
            for s in range(1, 6)
        ]
    }
    classes = [
        {"class": "3", "n": 27, "delta": -0.2, "regressed": True},
        {"class": "4", "n": 27, "delta": 0.05, "regressed": False},
    ]
    return {
        "schema_version": 1,
        "suite": {"name": "release <gate>", "path": "suites/release.yaml"},
        "verdict": "fail",
        "exit_code": 1,
        "strict": False,
        "started": "2026-11-29T06:00:00Z",
        "finished": "2026-11-29T06:00:09Z",
        "duration": 9.2,
        "checkpoint": {"path": "c.pt", "sha256": "ab" * 32, "arch": "resnet18"},
        "baseline": {"path": "b.pt", "sha256": "cd" * 32, "arch": "resnet18"},
        "environment": {
            "python": "3.11",
            "torch": "2.14",
            "torchvision": "0.29",
            "qa": "0.1.0",
            "platform": "linux",
            "device": "cpu",
        },
        "summary": {"pass": 2, "fail": 2, "warn": 0, "error": 1, "skip": 0},
        "overview": {"class_names": ["0", "1"], "confusion_matrix": [[50, 2], [3, 45]]},
        "checks": [
            _check(
                "accuracy",
                "top1_accuracy",
                "accuracy",
                "pass",
                {"top1": 0.97, "top1_low": 0.94},
                {"metric": "top1_low", "op": ">=", "value": 0.9},
            ),
            _check(
                "ece",
                "ece",
                "calibration",
                "fail",
                {"ece": 0.08, "ece_high": 0.1},
                {"metric": "ece_high", "op": "<=", "value": 0.05},
                {"reliability": reliability},
            ),
            _check(
                "noise",
                "corruption_accuracy",
                "robustness",
                "pass",
                {"min_accuracy": 0.5},
                None,
                {"curves": curves},
            ),
            _check(
                "classes",
                "per_class_regression",
                "regression",
                "fail",
                {"n_regressed": 1},
                {"metric": "n_regressed", "op": "<=", "value": 0},
                {"classes": classes},
            ),
            _check(
                "flips",
                "negative_flip_rate",
                "regression",
                "error",
                {
                    "negative_flips": 3000,
                    "positive_flips": 10,
                    "both_correct": 7000,
                    "both_wrong": 5,
                },
                None,
                {"flips": flips},
            ),
        ],
    }


def test_report_shows_verdict_rows_and_figures(doc):
    page = html.render(doc)
    assert "✗ FAIL" in page
    assert page.count('class="check-row"') == 5
    assert "release &lt;gate&gt;" in page  # escaped, never raw markup
    for title in (
        "Reliability diagram",
        "gaussian_noise: accuracy against severity",
        "Per-class recall delta",
        "Flip matrix",
        "Confusion matrix",
    ):
        assert f"<title>{title}</title>" in page, title
    assert "0.1 &lt;= 0.05" in page or "0.1 <= 0.05" in page


def test_report_is_self_contained(doc):
    page = html.render(doc)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(http" not in page
    assert "default-src 'none'" in page


def test_report_stays_small_whatever_the_eval_size(doc):
    page = html.render(doc)
    assert len(json.dumps(doc)) > 200_000  # the JSON holds all 3,000 flips...
    assert len(page.encode()) < 100_000  # ...the page only a capped table of them
    assert "2975 more rows in the JSON result" in page


def test_delta_bars_are_drawn_for_per_class_deltas_whatever_the_kind(doc):
    deltas = [{"class": "3", "delta": -0.2, "regressed": True}]
    recalls = [{"class": "3", "recall": 0.8, "recall_low": 0.6}]  # per_class_recall's rows
    doc["checks"] = [
        _check("renamed", "class_delta_v2", "regression", "fail", {}, None, {"classes": deltas}),
        _check("recall", "per_class_recall", "accuracy", "pass", {}, None, {"classes": recalls}),
    ]
    renamed, recall = (html._figures(c) for c in doc["checks"])
    assert [f["caption"] for f in renamed] == [
        "Recall delta per class (candidate - baseline); regressions marked."
    ]
    assert recall == []
    assert "<title>Per-class recall delta</title>" in html.render(doc)


def test_a_thousand_class_confusion_matrix_is_left_to_the_json(doc):
    k = 1000
    matrix = [[int(i == j) * 5 + (j == (i + 1) % k) for j in range(k)] for i in range(k)]
    doc["overview"] = {"class_names": [f"n{i:04d}" for i in range(k)], "confusion_matrix": matrix}
    page = html.render(doc)
    assert len(page) < 200_000  # drawn, it was 115 MB of SVG
    assert "1000 classes, too many to draw here; result.json holds it" in page


SVG = "{http://www.w3.org/2000/svg}"
LABELS = np.repeat(np.arange(2), 50)  # 100 samples of two classes


def _predicting(wrong: int) -> np.ndarray:
    """Logits of a model wrong on the first `wrong` of LABELS (and right on the rest)."""
    predicted = np.where(np.arange(len(LABELS)) < wrong, 1 - LABELS, LABELS)
    return (np.eye(2)[predicted] * 4.0).astype(np.float32)


def _noise(s: int, model: str = "candidate") -> View:
    return View(model=model, perturbation="gaussian_noise", severity=s)


def _evidence(views: dict) -> Evidence:
    ids = [f"img-{i}.png" for i in range(len(LABELS))]
    arrays = {view: _predicting(wrong) for view, wrong in views.items()}
    return Evidence(class_names=["a", "b"], labels=LABELS, sample_ids=ids, arrays=arrays)


def _judged(kind: str, evidence: Evidence, **params) -> dict:
    """A real check's result, as the result document holds it."""
    spec = REGISTRY[kind]
    r = spec.run(evidence, spec.params(**params))
    check = _check(kind, kind, "robustness", r.status, r.metrics, r.threshold, r.details)
    return check | {"effect": r.effect}


def _drawn(check: dict, title_starts: str) -> tuple[ET.Element, str]:
    """The figure of `check` whose title starts with `title_starts`, parsed, and its caption."""
    for fig in html._figures(check):
        svg = ET.fromstring(fig["svg"])
        if svg.find(f"{SVG}title").text.startswith(title_starts):
            return svg, fig["caption"]
    raise AssertionError(f"no figure titled {title_starts!r}")


def _value_at(svg: ET.Element):
    """The y axis read back from its tick labels: pixel y -> value."""
    ticks = [
        (float(g.find(f"{SVG}text").text), float(g.find(f"{SVG}line").get("y1")))
        for g in svg.iter(f"{SVG}g")
        if g.get("class") == "ytick"
    ]
    (v0, y0), (v1, y1) = ticks[0], ticks[-1]
    return lambda y: v0 + (float(y) - y0) * (v1 - v0) / (y1 - y0)


def _marks(svg: ET.Element, tag: str, who: str) -> dict[str, float]:
    """{title: centre y} of the markers of series `who` (circles or 6-px squares)."""
    return {
        m.find(f"{SVG}title").text: float(m.get("cy") or float(m.get("y")) + 3)
        for m in svg.iter(f"{SVG}{tag}")
        if m.get("class") == who
    }


def test_severity_curves_draw_baseline_threshold_and_clean_accuracy_on_a_fitted_axis():
    views = {CLEAN: 2, _noise(1): 5, _noise(2): 8}  # candidate: 0.98 clean, 0.95, 0.92
    baseline = {BASELINE: 1, _noise(1, "baseline"): 3, _noise(2, "baseline"): 12}
    check = _judged(
        "corruption_accuracy",
        _evidence(views | baseline),  # the baseline's views, computed for another check
        perturbations=["gaussian_noise"],
        severities=[1, 2],
        min=0.85,
        gate_on="point",
    )
    svg, caption = _drawn(check, "gaussian_noise: accuracy")
    value = _value_at(svg)
    assert "baseline dashed (squares)" in caption and "threshold 0.85" in caption
    candidate = {t: round(value(y), 4) for t, y in _marks(svg, "circle", "candidate").items()}
    assert candidate == {
        "candidate clean: 0.98": 0.98,
        "candidate s1: 0.95": 0.95,
        "candidate s2: 0.92": 0.92,
    }
    base = {t: round(value(y), 4) for t, y in _marks(svg, "rect", "baseline").items()}
    assert base == {
        "baseline clean: 0.99": 0.99,
        "baseline s1: 0.97": 0.97,
        "baseline s2: 0.88": 0.88,
    }
    assert [p.get("class") for p in svg.iter(f"{SVG}polyline")] == ["candidate", "baseline"]
    (line,) = [x for x in svg.iter(f"{SVG}line") if x.get("class") == "threshold"]
    assert value(line.get("y1")) == pytest.approx(0.85)
    assert 0.7 <= value(svg.find(f"{SVG}rect").get("y")) <= 1  # the top: not a 0-1 axis
    bottom = min(float(g.find(f"{SVG}text").text) for g in svg.iter(f"{SVG}g"))
    assert 0.7 <= bottom <= 0.85  # the axis holds the data and the threshold, no more

    alone = _judged(
        "corruption_accuracy",
        _evidence(views),
        perturbations=["gaussian_noise"],
        severities=[1, 2],
        min=0.85,
        gate_on="point",
    )
    svg, caption = _drawn(alone, "gaussian_noise: accuracy")
    assert "baseline" not in caption and _marks(svg, "rect", "baseline") == {}
    assert "bound" not in caption and check["effect"]["compared"] == "point"
    bound = _judged(
        "corruption_accuracy",
        _evidence(views),
        perturbations=["gaussian_noise"],
        severities=[1, 2],
        min=0.85,
    )  # gate_on: bound, what is not drawn
    assert "compares each view's lower bound" in html._figures(bound)[0]["caption"]


def test_mce_curves_start_from_both_models_clean_accuracy():
    views = {CLEAN: 2, _noise(1): 5, BASELINE: 1, _noise(1, "baseline"): 3}
    check = _judged(
        "mean_corruption_error",
        _evidence(views),
        perturbations=["gaussian_noise"],
        severities=[1],
        max=2.0,
        resamples=100,
    )
    svg, caption = _drawn(check, "gaussian_noise: accuracy")
    assert "threshold" not in caption  # the gate is on the mCE, not on what is drawn
    assert set(_marks(svg, "circle", "candidate")) == {
        "candidate clean: 0.98",
        "candidate s1: 0.95",
    }
    assert set(_marks(svg, "rect", "baseline")) == {"baseline clean: 0.99", "baseline s1: 0.97"}


def test_prediction_consistency_draws_flip_rates_under_its_max():
    evidence = _evidence({CLEAN: 0, _noise(1): 4, _noise(2): 10})  # flips: 0.04, 0.10
    check = _judged(
        "prediction_consistency",
        evidence,
        perturbations=["gaussian_noise"],
        severities=[1, 2],
        max=0.15,
        gate_on="point",
    )
    svg, caption = _drawn(check, "gaussian_noise: flip rate against severity")
    value = _value_at(svg)
    flips = sorted(round(value(y), 4) for y in _marks(svg, "circle", "candidate").values())
    assert flips == [r["flip_rate"] for r in check["details"]["views"]] == [0.04, 0.1]
    (line,) = [x for x in svg.iter(f"{SVG}line") if x.get("class") == "threshold"]
    assert value(line.get("y1")) == pytest.approx(0.15) and "threshold 0.15" in caption


def test_only_binned_calibration_errors_get_a_reliability_diagram(doc):
    rng = np.random.default_rng(0)
    evidence = _evidence({})
    evidence.arrays[CLEAN] = rng.normal(size=(len(LABELS), 2)).astype(np.float32)
    kinds = ("ece", "nll", "brier")
    doc["checks"] = [_judged(k, evidence, max=0.1, resamples=100) for k in kinds]
    drawn = {c["kind"]: [f["caption"] for f in html._figures(c)] for c in doc["checks"]}
    assert drawn["ece"] and drawn["nll"] == [] and drawn["brier"] == []
    assert html.render(doc).count("<title>Reliability diagram</title>") == 1


def test_numbers_are_rounded_for_people_and_full_precision_stays_in_json(doc):
    metrics = {"p_value": 0.0004882812500000001, "p_value_low": 1e-4}
    threshold = {"metric": "p_value", "op": ">=", "value": 1 - 0.95 + 0}  # 0.050000000000000044
    doc["checks"] = [_check("mcnemar", "mcnemar", "regression", "fail", metrics, threshold)]
    page = html.render(doc)
    assert "0.050000000000000044" not in page and "0.0004882812500000001" not in page
    assert "p_value = 0.00049 &gt;= 0.05" in page  # the decision line under the check
    assert "0.00049 &gt;= 0.05" in _row_cells(page)[0]


def _row_cells(page: str) -> list[str]:
    """The text of each check row of the table, in order."""
    return [
        " ".join(re.sub(r"<[^>]+>", " ", row).split())
        for row in re.findall(r'<tr class="check-row".*?</tr>', page, flags=re.S)
    ]


def test_the_banner_names_the_failing_checks_and_their_rows_come_first(doc):
    doc["checks"][0]["status"] = "warn"  # accuracy, a warn-only check that missed
    page = html.render(doc)
    banner = page[page.index('id="failing"') : page.index("</div>", page.index('id="failing"'))]
    names = re.findall(r'<a href="#check-\d+"[^>]*>([^<]*)</a>', banner)
    assert names == ["ece", "classes", "flips"]  # fail, fail, error: not the warning
    rows = [
        re.search(r"data-status=\"(\w+)\"", r).group(1)
        for r in re.findall(r'<tr class="check-row"[^>]*>', page)
    ]
    assert rows == ["fail", "fail", "error", "warn", "pass"]
    doc["strict"] = True  # --strict: a warning fails the run, so the banner names it too
    strict = html.render(doc)
    assert ">accuracy</a></span>" in strict[: strict.index("<h1>")]


def test_a_borderline_gate_is_marked_with_its_more_samples_note(doc):
    metrics = {"top1": 0.9, "top1_low": 0.86, "top1_high": 0.93, "n": 100, "confidence": 0.95}
    check = _check(
        "acc",
        "top1_accuracy",
        "accuracy",
        "fail",
        metrics,
        {"metric": "top1_low", "op": ">=", "value": 0.88},
    )
    check["effect"] = effect("top1_low", ">=", 0.88, metrics)
    doc["checks"] = [check]
    (row,) = _row_cells(html.render(doc))
    assert "borderline" in row.split("acc")[0]  # marked beside the status
    assert "0.9 [0.86, 0.93] (95%)" in row
    assert "borderline: about 300 more samples would settle it" in row
