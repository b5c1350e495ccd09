"""The HTML report: self-contained, one row per check, figures where the data calls for them."""

import json
import re

import pytest

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
