"""Accuracy checks on constructed logits whose answers are known by hand."""

import numpy as np
import pytest

from qa.checks import REGISTRY, load_all
from qa.evidence import CLEAN, Evidence
from qa.metrics.accuracy import macro_f1

NAMES = ["cat", "dog", "fox"]


def _evidence(labels, pred, names=NAMES, **extra) -> Evidence:
    """Evidence whose argmax predictions are exactly `pred`."""
    labels, pred = np.asarray(labels), np.asarray(pred)
    logits = np.zeros((len(labels), len(names)), dtype=np.float32)
    logits[np.arange(len(pred)), pred] = 5.0
    return Evidence(
        class_names=list(names),
        labels=labels,
        sample_ids=[f"s{i}" for i in range(len(labels))],
        arrays={CLEAN: logits},
        **extra,
    )


def _run(kind: str, evidence: Evidence, **params):
    spec = load_all()[kind]
    return spec.run(evidence, spec.params(**params))


def _correct_of(n: int, k: int, label: int = 0, wrong: int = 1) -> tuple[list, list]:
    """n samples of `label`, the first k predicted right, the rest predicted as `wrong`."""
    return [label] * n, [label] * k + [wrong] * (n - k)


def test_top1_gates_on_the_lower_bound_where_the_point_would_pass():
    # one-sided 95% Wilson bounds of 95/100 (the two-sided 90% interval): (0.9008, 0.9755)
    ev = _evidence(*_correct_of(100, 95))
    bound = _run("top1_accuracy", ev, min=0.91)
    assert bound.status == "fail"
    assert bound.metrics["accuracy"] == pytest.approx(0.95)
    assert bound.metrics["accuracy_low"] == pytest.approx(0.9008, abs=1e-4)
    assert bound.metrics["accuracy_high"] == pytest.approx(0.9755, abs=1e-4)
    assert (bound.metrics["k"], bound.metrics["n"]) == (95, 100)
    assert bound.metrics["interval"] == "wilson" and bound.metrics["confidence"] == 0.95
    assert bound.threshold == {"metric": "accuracy_low", "op": ">=", "value": 0.91}
    assert "lower 95% bound" in bound.message and "95/100" in bound.message
    point = _run("top1_accuracy", ev, min=0.91, gate_on="point")
    assert point.status == "pass"
    assert point.threshold["metric"] == "accuracy"
    assert _run("top1_accuracy", ev, min=0.9).status == "pass"


def test_interval_method_and_confidence_come_from_the_evidence():
    labels, pred = _correct_of(100, 95)
    exact = _run("top1_accuracy", _evidence(labels, pred, interval_method="clopper_pearson"), min=0)
    # the one-sided exact bound: the 5% quantile of Beta(95, 6)
    assert exact.metrics["accuracy_low"] == pytest.approx(0.8977, abs=1e-4)
    assert exact.metrics["interval"] == "clopper_pearson"
    wide = _run("top1_accuracy", _evidence(labels, pred, confidence=0.99), min=0)
    assert wide.metrics["accuracy_low"] == pytest.approx(0.8724, abs=1e-4)  # Wilson, z = 2.326
    assert wide.metrics["confidence"] == 0.99


def test_topk_counts_a_true_class_ranked_second():
    n = 200
    labels = np.zeros(n, dtype=int)
    logits = np.tile(np.array([1.0, 2.0, 0.0], dtype=np.float32), (n, 1))  # cat ranked second
    logits[:20] = [0.0, 2.0, 1.0]  # cat ranked last for 20 samples
    ev = Evidence(NAMES, labels, [str(i) for i in range(n)], {CLEAN: logits})
    top2 = _run("topk_accuracy", ev, k=2, min=0.85)
    assert top2.status == "pass" and top2.metrics["accuracy"] == pytest.approx(0.9)
    assert top2.metrics["top_k"] == 2 and "top-2" in top2.message
    assert _run("topk_accuracy", ev, k=2, min=0.9).status == "fail"  # lower bound < 0.9
    assert _run("topk_accuracy", ev, k=2, min=0.9, gate_on="point").status == "pass"
    assert _run("top1_accuracy", ev, min=0.01, gate_on="point").status == "fail"
    assert _run("topk_accuracy", ev, k=3, min=0.5).status == "error"  # k = number of classes


def _three_classes() -> Evidence:
    """cat recall 50/50, dog 45/50 (wrong ones called fox), fox 30/50 (wrong ones called cat)."""
    labels = [0] * 50 + [1] * 50 + [2] * 50
    pred = [0] * 50 + [1] * 45 + [2] * 5 + [2] * 30 + [0] * 20
    return _evidence(labels, pred)


def test_per_class_recall_names_the_classes_below():
    result = _run("per_class_recall", _three_classes(), min=0.82)
    assert result.status == "fail"
    assert result.metrics["worst_class"] == "fox"
    assert result.metrics["worst_recall"] == pytest.approx(0.6)
    assert result.metrics["classes_below"] == 2  # dog's lower bound (0.8085) is below 0.82 too
    assert "2 of 3 classes" in result.message and "fox" in result.message
    assert "dog" in result.message and "cat" not in result.message
    rows = {r["class"]: r for r in result.details["classes"]}
    assert (rows["dog"]["k"], rows["dog"]["n"]) == (45, 50)
    assert rows["dog"]["recall_low"] == pytest.approx(0.8085, abs=1e-3)
    assert result.threshold == {"metric": "worst_recall_low", "op": ">=", "value": 0.82}
    point = _run("per_class_recall", _three_classes(), min=0.82, gate_on="point")
    assert point.status == "fail" and "dog" not in point.message
    assert _run("per_class_recall", _three_classes(), min=0.7, classes=["cat", "dog"]).status == (
        "pass"
    )


def test_per_class_recall_errors_on_unknown_or_empty_classes():
    result = _run("per_class_recall", _three_classes(), min=0.5, classes=["cat", "dgo"])
    assert result.status == "error"
    assert "'dgo'" in result.message and "did you mean 'dog'" in result.message
    assert "cat, dog, fox" in result.message
    empty = _run("per_class_recall", _evidence([0, 1], [0, 1]), min=0.5)
    assert empty.status == "error" and "fox" in empty.message


def test_macro_f1_bootstrap_bound_is_seeded_and_gates():
    ev = _three_classes()
    point = macro_f1(ev.labels, ev.logits().argmax(1), 3)
    result = _run("macro_f1", ev, min=0.5)
    assert result.metrics["macro_f1"] == pytest.approx(point)
    low, high = result.metrics["macro_f1_low"], result.metrics["macro_f1_high"]
    assert low < point < high and high - low < 0.3
    assert result.status == "pass" and result.threshold["metric"] == "macro_f1_low"
    assert "bootstrap" in result.metrics["interval"]
    assert _run("macro_f1", ev, min=0.5).metrics == result.metrics  # seeded: reproducible
    between = (low + point) / 2
    assert _run("macro_f1", ev, min=between).status == "fail"
    assert _run("macro_f1", ev, min=between, gate_on="point").status == "pass"


def test_confusion_rate_gates_the_upper_bound():
    labels = [0] * 100 + [1] * 20
    pred = [0] * 96 + [1] * 4 + [1] * 20  # 4 of 100 cats called dogs: Wilson (0.0181, 0.0862)
    ev = _evidence(labels, pred)
    result = _run("confusion_rate", ev, true="cat", predicted="dog", max=0.05)
    assert result.status == "fail"
    assert result.metrics["confusion_rate"] == pytest.approx(0.04)
    assert result.metrics["confusion_rate_high"] == pytest.approx(0.0862, abs=1e-4)
    assert result.threshold == {"metric": "confusion_rate_high", "op": "<=", "value": 0.05}
    assert "upper 95% bound" in result.message
    point = _run("confusion_rate", ev, true="cat", predicted="dog", max=0.05, gate_on="point")
    assert point.status == "pass"
    assert _run("confusion_rate", ev, true="dog", predicted="cat", max=0.2).status == "pass"
    unknown = _run("confusion_rate", ev, true="cat", predicted="wolf", max=0.1)
    assert unknown.status == "error" and "'wolf'" in unknown.message
    absent = _run("confusion_rate", ev, true="fox", predicted="cat", max=0.1)
    assert absent.status == "error" and "no eval samples" in absent.message


def test_confusion_rate_params_reject_a_class_confused_with_itself():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must differ"):
        REGISTRY["confusion_rate"].params(true="cat", predicted="cat", max=0.1)


@pytest.mark.parametrize("kind", ["top1_accuracy", "per_class_recall", "macro_f1"])
@pytest.mark.parametrize("bad", ["nan", "empty"])
def test_unsound_evidence_is_an_error_never_a_pass(kind, bad):
    ev = _three_classes()
    if bad == "nan":
        ev.arrays[CLEAN][3, 1] = np.nan
    else:
        ev = ev.subset(np.zeros(len(ev.labels), dtype=bool))
    result = _run(kind, ev, min=0.0)
    assert result.status == "error"


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("top1_accuracy", {"min": 1.2}),
        ("top1_accuracy", {"min": -0.1}),
        ("topk_accuracy", {"k": 0, "min": 0.5}),
        ("per_class_recall", {"min": 0.5, "classes": []}),
        ("per_class_recall", {"min": 0.5, "classes": [3]}),
        ("macro_f1", {"min": 0.5, "resamples": 10}),
        ("confusion_rate", {"true": "a", "predicted": "b", "max": 2}),
        ("top1_accuracy", {"min": 0.5, "gate_on": "upper_bound"}),
    ],
)
def test_params_validate_ranges(kind, params):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        load_all()[kind].params.model_validate(params, strict=True)
