"""Every gate says how big the effect is: estimate, interval, regression facts, borderline."""

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from helpers import sample_report
from rich.console import Console

import qa.checks.accuracy
import qa.checks.regression  # noqa: F401
from qa.checks import REGISTRY, gate
from qa.checks.effect import effect
from qa.evidence import BASELINE, CLEAN, Evidence
from qa.report import html, json_report, junit, markdown, terminal
from qa.report.fmt import decision, effect_lines, interval_text, regression_text
from qa.result import CheckOutcome

CLASSES = [str(i) for i in range(5)]


def test_borderline_pass_says_how_many_more_samples_would_settle_it():
    metrics = {"acc": 0.90, "acc_low": 0.86, "acc_high": 0.93, "n": 100, "confidence": 0.95}
    e = effect("acc_low", ">=", 0.88, metrics)
    assert (e["estimate"], e["low"], e["high"], e["compared"]) == (0.90, 0.86, 0.93, "bound")
    assert e["borderline"] is True
    # by hand: the low side must shrink from 0.04 to 0.02, a quarter of the variance: n = 400
    assert e["more_samples"] == 300
    assert e["candidate"] is None and e["mde"] is None


def test_borderline_fail_uses_the_side_facing_the_threshold():
    metrics = {"acc": 0.85, "acc_low": 0.80, "acc_high": 0.88, "n": 200}
    e = effect("acc_low", ">=", 0.87, metrics)
    # the estimate is below: the high side (0.03) must shrink to 0.02, n = 200 * 2.25 = 450
    assert e["borderline"] is True and e["more_samples"] == 250


def test_clear_decisions_and_an_estimate_on_the_threshold_give_no_sample_count():
    metrics = {"acc": 0.90, "acc_low": 0.86, "acc_high": 0.93, "n": 100}
    assert effect("acc_low", ">=", 0.80, metrics)["borderline"] is False
    assert effect("acc_low", ">=", 0.95, metrics)["borderline"] is False
    on = effect("acc_low", ">=", 0.90, metrics)
    assert on["borderline"] is True and on["more_samples"] is None


def test_a_one_sided_bound_spans_from_its_estimate():
    metrics = {"ece": 0.08, "ece_high": 0.12, "n": 50}
    e = effect("ece_high", "<=", 0.10, metrics)
    assert e["low"] is None and e["borderline"] is True
    assert e["more_samples"] == 150  # 0.04 -> 0.02: n = 200
    assert effect("ece_high", "<=", 0.15, metrics)["borderline"] is False


def test_counts_without_interval_are_never_borderline():
    e = gate("n_failed", 3, "<=", 0, {"n_failed": 3, "n_checked": 10}, "files").effect
    assert e["estimate"] == 3 and e["borderline"] is False and e["more_samples"] is None


def _evidence(labels, base_pred, cand_pred) -> Evidence:
    def logits(pred):
        return (np.eye(5)[pred] * 4.0).astype(np.float32)

    return Evidence(
        class_names=CLASSES,
        labels=labels,
        sample_ids=[f"img-{i}.png" for i in range(len(labels))],
        arrays={CLEAN: logits(cand_pred), BASELINE: logits(base_pred)},
    )


def _run(kind, evidence, **params):
    spec = REGISTRY[kind]
    return spec.run(evidence, spec.params(**params))


@pytest.fixture
def worse_candidate():
    """500 samples: the baseline wrong on 10, the candidate on those and 11 more (2.2 points)."""
    labels = np.repeat(np.arange(5), 100)
    base = labels.copy()
    base[:10] = (labels[:10] + 1) % 5
    cand = base.copy()
    cand[100:111] = (labels[100:111] + 1) % 5
    return _evidence(labels, base, cand)


def test_a_passing_regression_gate_still_shows_the_candidate_is_worse(worse_candidate):
    result = _run("accuracy_regression", worse_candidate, tolerance=0.06)
    assert result.status == "pass"
    e = result.effect
    assert e["measure"] == "accuracy"
    assert (e["candidate"], e["baseline"]) == (pytest.approx(0.958), pytest.approx(0.98))
    assert e["delta"] == pytest.approx(-0.022)
    assert e["delta_low"] < e["delta"] < e["delta_high"] < 0
    assert e["estimate"] == e["delta"] and e["value"] == e["delta_high"]
    assert e["mde"] == result.metrics["mde"] > 0


@pytest.mark.parametrize("kind", ["mcnemar", "negative_flip_rate", "per_class_regression"])
def test_every_regression_gate_reports_both_models(worse_candidate, kind):
    params = {"max": 0.05} if kind == "negative_flip_rate" else {}
    e = _run(kind, worse_candidate, **params).effect
    assert e["candidate"] is not None and e["baseline"] is not None and e["delta"] < 0
    assert e["mde"] is not None


def test_negative_flip_rate_reports_its_interval_and_borderline(worse_candidate):
    result = _run("negative_flip_rate", worse_candidate, max=0.03)
    e = result.effect
    assert e["estimate"] == pytest.approx(11 / 500)
    assert (e["low"], e["high"]) == (result.metrics["nfr_low"], result.metrics["nfr_high"])
    assert result.status == "fail" and e["borderline"] is True and e["more_samples"] > 0


def _effect_doc(worse_candidate) -> dict:
    """A result document of real regression and accuracy outcomes, one of them borderline."""
    report = sample_report()
    runs = [
        ("accuracy regression", "accuracy_regression", {"tolerance": 0.06}),
        ("negative flips within two and a half percent", "negative_flip_rate", {"max": 0.025}),
        ("top-1 accuracy at least ninety-six percent", "top1_accuracy", {"min": 0.96}),
    ]
    report.outcomes = [
        CheckOutcome(name, kind, "regression", "fail", r.status, r, None, 0.1)
        for name, kind, params in runs
        for r in [_run(kind, worse_candidate, **params)]
    ]
    return json_report.to_dict(report)


@pytest.mark.parametrize("width", [80, 120])
def test_terminal_cuts_nothing_at_80_or_120_columns(worse_candidate, width):
    doc = _effect_doc(worse_candidate)
    out = io.StringIO()
    terminal.show(doc, Console(file=out, width=width, color_system=None))
    text = out.getvalue()
    assert "…" not in text
    table = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
    assert all(len(line) <= width and line[-1] in "┓┃┩│┘" for line in table)
    words = text.split()
    for check in doc["checks"]:
        lines = effect_lines(check)
        if width >= terminal.NARROW:  # the first line's numbers have columns of their own
            lines = [interval_text(check), decision(check), *lines[1:]]
        for line in [check["message"], *lines]:
            for word in line.split():  # every word whole, even where a cell wraps
                assert word in words, (width, word)
    assert "-0.022" in words and "borderline:" in words


def test_every_format_shows_the_effect(worse_candidate):
    doc = _effect_doc(worse_candidate)
    shown = regression_text(doc["checks"][0])
    assert shown.startswith("accuracy 0.958 vs baseline 0.98: delta -0.022 [")
    assert shown in markdown.render(doc).replace("\\", "")  # unescaped: [ and ] are literal
    assert shown in html.render(doc)
    cases = ET.fromstring(junit.render(doc)).iter("testcase")
    assert any(shown in "".join(case.itertext()) for case in cases)
