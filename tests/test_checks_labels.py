"""The label_issues check: on planted wrong labels in evidence, and end to end on real digit
files with 3s filed under 8, through `qa run`."""

import json
import shutil

import numpy as np
import pytest
import torch
from helpers import _digits_test_split, save_tiny, tiny_module, write_data, write_suite
from PIL import Image
from pydantic import ValidationError

from qa.checks import load_all
from qa.cli import main
from qa.evidence import CLEAN, Evidence, View
from qa.metrics.intervals import binomial_bounds

CLASSES = ["a", "b", "c", "d"]
TRAIN = View(split="train")


def _confident(true: np.ndarray) -> np.ndarray:
    """Logits of a model right and equally sure (0.98) on every sample: a sample's label
    disagrees confidently exactly when it is wrong."""
    return (5 * np.eye(len(CLASSES))[true]).astype(np.float32)


def _planted(n=80, wrong=(3, 10, 17)):
    """True classes, given labels with `wrong` samples relabelled (true + 1), and logits."""
    true = np.arange(n) % len(CLASSES)
    given = true.copy()
    given[list(wrong)] = (true[list(wrong)] + 1) % len(CLASSES)
    return true, given, _confident(true)


def _run(evidence, **params):
    spec = load_all()["label_issues"]
    return spec.run(evidence, spec.params.model_validate(params, strict=True))


def _eval_evidence(given, logits, **extra):
    ids = [f"{CLASSES[g]}/img{i}.png" for i, g in enumerate(given)]
    return Evidence(CLASSES, given, ids, {CLEAN: logits}, **extra)


def test_planted_eval_labels_are_flagged_with_the_label_they_look_like():
    true, given, logits = _planted()
    result = _run(_eval_evidence(given, logits), max_count=2)
    assert result.status == "fail" and result.metrics["n_issues"] == 3
    issues = result.details["issues"]
    assert sorted(int(row["path"].split("img")[1][:-4]) for row in issues) == [3, 10, 17]
    for row in issues:
        i = int(row["path"].split("img")[1][:-4])
        assert (row["given"], row["suggested"]) == (CLASSES[given[i]], CLASSES[true[i]])
        assert row["suggested_probability"] > 0.5 > row["self_confidence"]
    confidences = [row["self_confidence"] for row in issues]
    assert confidences == sorted(confidences)  # worst first
    assert result.details["failing_paths"] == [row["path"] for row in issues]
    assert "looks like" in result.message and "3 of 80 eval labels" in result.message
    assert _run(_eval_evidence(given, logits), max_count=3).status == "pass"
    assert _run(_eval_evidence(true, logits), max_count=0).status == "pass"


def test_the_rate_gate_compares_the_upper_bound_at_the_suites_confidence():
    _, given, logits = _planted()
    evidence = _eval_evidence(given, logits, confidence=0.9, interval_method="clopper_pearson")
    high = binomial_bounds(3, 80, 0.9, "clopper_pearson")[1]
    result = _run(evidence, max_rate=high + 1e-9)
    assert result.status == "pass" and result.metrics["issue_rate_high"] == high
    assert result.threshold["metric"] == "issue_rate_high"
    assert _run(evidence, max_rate=high - 1e-9).status == "fail"
    point = _run(evidence, max_rate=3 / 80, gate_on="point")
    assert point.status == "pass" and point.threshold["metric"] == "issue_rate"
    assert point.effect["estimate"] == 3 / 80 and point.effect["high"] == high


@pytest.mark.parametrize("params", [{}, {"max_count": 1, "max_rate": 0.1}])
def test_exactly_one_gate_is_given(params):
    with pytest.raises(ValidationError, match="exactly one of max_count, max_rate"):
        load_all()["label_issues"].params.model_validate(params)


def test_train_labels_are_judged_on_cross_validated_probabilities_and_named_by_train_ids():
    true, given, logits = _planted(n=120, wrong=(5, 40, 77))
    ids = [f"train/{i}.png" for i in range(len(given))]
    evidence = Evidence(
        CLASSES,
        true[:8],
        [f"e{i}" for i in range(8)],
        {CLEAN: logits[:8], TRAIN: logits},
        split_labels={"train": given},
        split_ids={"train": ids},
    )
    result = _run(evidence, split="train", max_count=0, folds=4)
    assert result.status == "fail"
    assert sorted(result.details["failing_paths"]) == [
        "train/40.png",
        "train/5.png",
        "train/77.png",
    ]
    assert "4-fold cross-validated" in result.details["source"]
    assert _run(evidence, split="train", max_count=0, folds=4, seed=1).metrics["n_issues"] == 3


def test_train_without_a_train_split_skips_and_too_many_folds_is_an_error():
    _, given, logits = _planted()
    assert _run(_eval_evidence(given, logits), split="train", max_count=0).status == "skip"
    evidence = Evidence(
        CLASSES,
        given,
        [str(i) for i in range(80)],
        {CLEAN: logits, TRAIN: logits},
        split_labels={"train": given},
        split_ids={"train": [str(i) for i in range(80)]},
    )
    result = _run(evidence, split="train", max_count=0, folds=30)
    assert result.status == "error" and "lower `folds`" in result.message


def test_non_finite_logits_are_an_error():
    _, given, logits = _planted()
    logits[4, 1] = np.nan
    result = _run(_eval_evidence(given, logits), max_count=0)
    assert result.status == "error" and "NaN" in result.message


# --- end to end ---------------------------------------------------------------------------


def _pixels(files) -> torch.Tensor:
    """The images as the checkpoint's preprocessing gives them (16x16, ImageNet-normalised)."""
    px = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return torch.tensor((px - mean) / std, dtype=torch.float32).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """A checkpoint that reads digits: a random resnet18's features, a head trained here on
    50 training digits per class (never the test digits the checks read)."""
    train = _digits_test_split().parent / "train"
    files = [f for d in sorted(train.iterdir()) for f in sorted(d.iterdir())[:50]]
    targets = torch.tensor([int(f.parent.name) for f in files])
    model = tiny_module(seed=0)
    head, model.fc = model.fc, torch.nn.Identity()
    with torch.no_grad():
        features = model(_pixels(files))
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(head(features), targets).backward()
        optimiser.step()
    model.fc = head
    return save_tiny(tmp_path_factory.mktemp("reader") / "reader.pt", module=model.eval())


@pytest.mark.slow
def test_threes_filed_under_eight_are_flagged_as_threes_in_the_run_and_its_report(tmp_path, reader):
    data = write_data(tmp_path / "eval", per_class=12)
    moved = sorted((data / "3").iterdir())[:3]
    for image in moved:
        shutil.move(image, data / "8" / f"moved-{image.name}")
    checks = """\
- {kind: label_issues, name: eval labels, max_count: 0}
- {kind: label_issues, name: train labels, split: train, max_rate: 0.5, folds: 3}
"""
    suite = write_suite(tmp_path / "s.yaml", data, checks, head="")
    text = suite.read_text().replace("data:\n", f"data:\n  train: {data}\n")
    suite.write_text(text)
    code = main(["run", str(suite), str(reader), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 1
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    checks = {c["name"]: c for c in doc["checks"]}
    wanted = {f"8/moved-{image.name}" for image in moved}
    for name in ("eval labels", "train labels"):
        flagged = {row["path"]: row for row in checks[name]["details"]["issues"]}
        assert wanted <= set(flagged), (name, sorted(flagged))
        assert {(flagged[p]["given"], flagged[p]["suggested"]) for p in wanted} == {("8", "3")}
    assert checks["eval labels"]["status"] == "fail"
    thumbs = {t["path"] for t in checks["eval labels"]["details"]["thumbnails"]}
    assert wanted <= thumbs
    html = (tmp_path / "out" / "result.html").read_text()
    assert "8 → 3" in html and "issues (" in html
