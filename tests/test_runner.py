"""The runner: planning, slices, isolation of a failing check, severity and the verdict."""

from typing import ClassVar

import numpy as np
import pytest

from qa.checks import REGISTRY, CheckParams, CheckResult, register
from qa.errors import ExitCode
from qa.evidence import BASELINE, CLEAN, Evidence, View
from qa.result import CheckOutcome
from qa.runner import exit_code, plan, run_checks, verdict
from qa.suite import load_suite

NOISE = View(perturbation="gaussian_noise", severity=3)
TRAIN = View(split="train")


class _ViewsParams(CheckParams):
    """Test-only: reads noise, baseline and train views beside the clean ones."""

    needs_baseline: ClassVar[bool] = True
    example: ClassVar[dict] = {}

    def views(self) -> list[View]:
        """Clean, noisy, baseline and train logits."""
        return [CLEAN, NOISE, BASELINE, TRAIN]


class _PlainParams(CheckParams):
    """Test-only: no parameters."""

    example: ClassVar[dict] = {}


@pytest.fixture
def test_kinds():
    """Register test-only kinds: one with many views, one that crashes, one that misbehaves."""

    @register("test_views", "test", _ViewsParams)
    def views(evidence, params):
        """Reads every view it asked for."""
        return CheckResult("pass", f"{len(evidence.logits(NOISE))} noisy samples")

    @register("test_crash", "test", _PlainParams)
    def crash(evidence, params):
        """Always raises."""
        return 1 / 0

    @register("test_garbage", "test", _PlainParams)
    def garbage(evidence, params):
        """Returns something that is not a result."""
        return "fine"

    yield
    for kind in ("test_views", "test_crash", "test_garbage"):
        del REGISTRY[kind]


def _suite(tmp_path, monkeypatch, checks: str, head: str = "", **kwargs):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text(f"name: t\n{head}data:\n  eval: d\nchecks:\n{checks}")
    return load_suite("suite.yaml", **kwargs)


def _evidence() -> Evidence:
    """60 samples: camera A all right, camera B half wrong."""
    labels = np.array([0, 1, 2] * 20)
    camera = np.array(["A"] * 30 + ["B"] * 30)
    pred = labels.copy()
    pred[30::2] = (labels[30::2] + 1) % 3
    logits = np.eye(3, dtype=np.float32)[pred] * 4
    return Evidence(
        class_names=["a", "b", "c"],
        labels=labels,
        sample_ids=[f"s{i}" for i in range(60)],
        arrays={CLEAN: logits},
        metadata={"camera": camera, "site": np.arange(60) % 2},
    )


def test_plan_is_the_deduplicated_union_of_computable_views(tmp_path, monkeypatch, test_kinds):
    checks = "  - kind: top1_accuracy\n    min: 0.5\n  - kind: test_views\n  - kind: macro_f1\n    min: 0.5\n"
    suite = _suite(tmp_path, monkeypatch, checks, baseline="b.pt")
    assert plan(suite) == [CLEAN, NOISE, BASELINE]  # no data.train: its view is not planned
    with_train = _suite(tmp_path, monkeypatch, checks, head="baseline: b.pt\n")
    assert with_train.baseline == "b.pt"
    train_suite = with_train.model_copy(
        update={"data": with_train.data.model_copy(update={"train": with_train.data.eval})}
    )
    assert plan(train_suite) == [CLEAN, NOISE, BASELINE, TRAIN]
    plain = _suite(tmp_path, monkeypatch, "  - kind: top1_accuracy\n    min: 0.5\n")
    assert plan(plain) == [CLEAN]


def test_slices_and_severity(tmp_path, monkeypatch):
    checks = (
        "  - kind: top1_accuracy\n    name: A\n    slice: {column: camera, equals: A}\n"
        "    min: 0.85\n"
        "  - kind: top1_accuracy\n    name: B\n    slice: {column: camera, in: [B]}\n"
        "    min: 0.85\n    severity: warn\n"
        "  - kind: top1_accuracy\n    name: site\n    slice: {column: site, equals: 1}\n"
        "    min: 0.5\n    gate_on: point\n"
    )
    outcomes = run_checks(_suite(tmp_path, monkeypatch, checks), _evidence())
    a, b, site = outcomes
    assert (a.status, a.result.metrics["n"], a.result.metrics["accuracy"]) == ("pass", 30, 1.0)
    assert a.slice == {"column": "camera", "equals": "A"}
    assert (b.status, b.result.status, b.severity) == ("warn", "fail", "warn")
    assert b.result.metrics["accuracy"] == pytest.approx(0.5)
    assert site.result.metrics["n"] == 30  # numbers in metadata compare as text
    assert all(o.kind == "top1_accuracy" and o.family == "accuracy" for o in outcomes)
    assert all(o.seconds >= 0 for o in outcomes)
    assert verdict(outcomes) == "pass"
    assert verdict(outcomes, strict=True) == "fail"


def test_a_slice_that_cannot_be_taken_is_that_checks_error(tmp_path, monkeypatch):
    checks = (
        "  - kind: top1_accuracy\n    slice: {column: lens, equals: A}\n    min: 0.5\n"
        "  - kind: top1_accuracy\n    slice: {column: camera, equals: C}\n    min: 0.5\n"
        "  - kind: top1_accuracy\n    min: 0.5\n"
    )
    lens, empty, whole = run_checks(_suite(tmp_path, monkeypatch, checks), _evidence())
    assert lens.status == "error" and "'lens'" in lens.result.message
    assert "camera, site" in lens.result.message
    assert empty.status == "error" and "holds no samples" in empty.result.message
    assert "camera has A, B" in empty.result.message
    assert whole.status == "pass"
    assert verdict([lens, empty, whole]) == "error"


def test_a_crashing_check_is_isolated_as_an_error(tmp_path, monkeypatch, test_kinds):
    checks = (
        "  - kind: test_crash\n    severity: warn\n  - kind: top1_accuracy\n    min: 0.5\n"
        "  - kind: test_garbage\n  - kind: test_views\n"
    )
    suite = _suite(tmp_path, monkeypatch, checks, baseline="b.pt")
    crash, accuracy, garbage, views = run_checks(suite, _evidence())
    assert crash.status == "error"  # an error blocks whatever the severity
    assert crash.result.message == "the check raised ZeroDivisionError: division by zero"
    assert "ZeroDivisionError" in crash.result.details["traceback"]
    assert accuracy.status == "pass"
    assert garbage.status == "error" and "not a CheckResult" in garbage.result.message
    assert views.status == "error"
    assert "no evidence for logits of candidate on eval (gaussian_noise s3)" in views.result.message
    assert verdict([crash, accuracy]) == "error"


def test_the_suite_sets_confidence_and_interval_method(tmp_path, monkeypatch):
    head = "defaults: {confidence: 0.8, interval: clopper_pearson}\n"
    suite = _suite(tmp_path, monkeypatch, "  - kind: top1_accuracy\n    min: 0.5\n", head=head)
    (outcome,) = run_checks(suite, _evidence())
    assert outcome.result.metrics["confidence"] == 0.8
    assert outcome.result.metrics["interval"] == "clopper_pearson"


def _outcome(status: str, severity: str = "fail") -> CheckOutcome:
    return CheckOutcome("c", "k", "f", severity, status, CheckResult(status, ""), None, 0.0)


@pytest.mark.parametrize(
    ("statuses", "strict", "expected"),
    [
        (["pass", "pass"], False, "pass"),
        (["pass", "warn", "skip"], False, "pass"),
        (["pass", "warn"], True, "fail"),
        (["pass", "fail", "error"], False, "fail"),
        (["pass", "error"], False, "error"),
        ([], False, "pass"),
    ],
)
def test_verdict(statuses, strict, expected):
    assert verdict([_outcome(s) for s in statuses], strict=strict) == expected


def test_exit_codes_of_verdicts():
    assert exit_code("pass") == ExitCode.OK == 0
    assert exit_code("fail") == exit_code("error") == ExitCode.GATE_FAILED == 1


def test_a_view_names_what_the_images_went_through():
    assert CLEAN.name() == "clean" and BASELINE.name() == "clean"
    assert NOISE.name() == "gaussian_noise s3" and NOISE.name("-") == "gaussian_noise-s3"
    attack = View(kind="adversarial", perturbation="fgsm:eps=0.1")
    assert attack.name("-") == "fgsm:eps=0.1"
    assert attack.label() == "adversarial of candidate on eval (fgsm:eps=0.1)"
    assert NOISE.label() == "logits of candidate on eval (gaussian_noise s3)"


def test_the_suites_defaults_and_the_evidence_share_one_source():
    from qa.metrics import intervals
    from qa.suite import Defaults

    bare = Evidence(["a"], np.zeros(1, dtype=int), ["s"])
    assert (bare.confidence, bare.interval_method) == (
        intervals.DEFAULT_CONFIDENCE,
        intervals.DEFAULT_METHOD,
    )
    assert (Defaults().confidence, Defaults().interval) == (
        intervals.DEFAULT_CONFIDENCE,
        intervals.DEFAULT_METHOD,
    )
