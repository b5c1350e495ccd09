"""Model views through the engine: perturbations, attacks, the calibration split, the baseline."""

import numpy as np
import pytest
import torch
from helpers import (
    DIGITS,
    PREPROCESSING,
    evidence_of,
    forward_counter,
    save_tiny,
    write_data,
    write_suite,
)

from qa.application import RunOptions, run_suite
from qa.errors import InputError
from qa.evidence import CLEAN, View
from qa.formats import load_any
from qa.inference import SEED
from qa.passes import view_key
from qa.perturb import perturb_view
from qa.preprocess import load_rgb, make_preprocessing, normalize, to_unit_tensor
from qa.suite import load_suite

N = 20  # two images per class: the test machine has two shared cores


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("digits"), per_class=2)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "cand.pt", seed=1)


def _run(tmp_path, data, ckpt, checks, **kwargs):
    suite = write_suite(tmp_path / "suite.yaml", data, checks)
    return run_suite(suite, ckpt, RunOptions(out=None, progress=False, **kwargs))


def test_robustness_checks_run_through_qa_run_with_curves_and_cached_views(
    tmp_path, data, ckpt, monkeypatch
):
    checks = """\
    - {kind: corruption_accuracy, perturbations: [gaussian_noise], severities: [1, 5], min: 0}
    - {kind: prediction_consistency, perturbations: [gaussian_noise], severities: [1, 5], max: 1}
    """
    cache_dir = tmp_path / "cache"
    report = _run(tmp_path, data, ckpt, checks, cache_dir=cache_dir)
    assert [o.status for o in report.outcomes] == ["pass", "pass"], report.outcomes
    for outcome, measure in zip(report.outcomes, ("accuracy", "flip_rate"), strict=True):
        curve = outcome.result.details["curves"]["gaussian_noise"]
        assert [point["severity"] for point in curve] == [1, 5]
        assert all(0 <= point[measure] <= 1 for point in curve)
    calls = forward_counter(monkeypatch)
    again = _run(tmp_path, data, ckpt, checks, cache_dir=cache_dir)
    assert calls == []  # clean and both perturbed views came from the cache
    assert again.outcomes[0].result.metrics == report.outcomes[0].result.metrics


def test_perturbed_logits_are_the_model_on_perturbed_unit_images(tmp_path, data, ckpt):
    model = load_any(ckpt)
    view = View(perturbation="gaussian_noise", severity=3)
    suite = load_suite(write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n"))
    ev = evidence_of(suite, model, [CLEAN, view], perturb=perturb_view)
    picks = [0, 7, N - 1]
    unit = to_unit_tensor(PREPROCESSING)
    images = torch.stack([unit(load_rgb(data / ev.sample_ids[i])) for i in picks])
    noisy = perturb_view(images, view, [ev.sample_ids[i] for i in picks], seed=SEED)
    with torch.inference_mode():
        expected = model.module(normalize(PREPROCESSING)(noisy)).numpy()
    np.testing.assert_allclose(ev.logits(view)[picks], expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(ev.logits(view), ev.logits(CLEAN))


def test_the_cache_key_holds_perturbation_severity_seed_and_attack(ckpt, monkeypatch):
    import qa.passes

    model = load_any(ckpt)
    settings = {"device": torch.device("cpu"), "batch_size": 8}
    noise = View(perturbation="gaussian_noise", severity=1)
    views = [
        CLEAN,
        noise,
        View(perturbation="gaussian_noise", severity=2),
        View(perturbation="shot_noise", severity=1),
        View(kind="adversarial", perturbation="fgsm:eps=0.01,space=pixel"),
        View(kind="adversarial", perturbation="fgsm:eps=0.02,space=pixel"),
    ]
    keys = {view_key(v, model, "data", settings) for v in views}
    assert len(keys) == len(views)
    before = view_key(noise, model, "data", settings)
    monkeypatch.setattr(qa.passes, "SEED", SEED + 1)
    assert view_key(noise, model, "data", settings) != before


def test_adversarial_views_need_gradients_but_leave_the_model_untouched(tmp_path, data, ckpt):
    checks = "- {kind: adversarial_accuracy, attacks: [fgsm, pgd], steps: 2, min: 0}\n"
    report = _run(tmp_path, data, ckpt, checks, cache_dir=None)
    (outcome,) = report.outcomes
    assert outcome.status == "pass", outcome.result.message
    metrics = outcome.result.metrics
    assert 0 <= metrics["worst_accuracy"] <= metrics["clean_accuracy"] + 1e-9
    assert {"fgsm_accuracy", "pgd_accuracy"} <= set(metrics)

    model = load_any(ckpt)
    fgsm = View(kind="adversarial", perturbation="fgsm:eps=0.03,space=pixel")
    suite = load_suite(tmp_path / "suite.yaml")
    ev = evidence_of(suite, model, [CLEAN, fgsm])
    loss = torch.nn.functional.cross_entropy
    labels = torch.as_tensor(ev.labels)
    clean_loss = loss(torch.tensor(np.asarray(ev.logits(CLEAN))), labels)
    assert loss(torch.as_tensor(ev.logits(fgsm)), labels) > clean_loss  # the attack bites
    params = list(model.module.parameters())
    assert all(p.grad is None and p.requires_grad for p in params)


def test_a_calibration_split_fits_the_temperature(tmp_path, data, ckpt):
    calibration = write_data(tmp_path / "cal", per_class=5)  # 50: the fitting minimum
    suite = write_suite(tmp_path / "suite.yaml", data, "- {kind: ece, max: 1.0}\n")
    text = suite.read_text().replace("data:\n", f"data:\n  calibration: {calibration}\n")
    suite.write_text(text)
    report = run_suite(suite, ckpt, RunOptions(out=None, cache_dir=None, progress=False))
    (outcome,) = report.outcomes
    fix = outcome.result.details["temperature_fix"]
    assert fix["fitted_on"] == "calibration split" and fix["n_fit"] == 50


def test_the_overview_is_the_clean_eval_confusion_matrix(tmp_path, data, ckpt):
    report = _run(tmp_path, data, ckpt, "- {kind: top1_accuracy, min: 0}\n", cache_dir=None)
    overview = report.overview
    assert overview["class_names"] == DIGITS and overview["n"] == N
    matrix = np.array(overview["confusion_matrix"])
    assert matrix.shape == (10, 10) and (matrix.sum(axis=1) == 2).all()  # rows: true class
    accuracy = report.outcomes[0].result.metrics["accuracy"]
    assert np.trace(matrix) / N == pytest.approx(accuracy)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"class_names": [*DIGITS[:7], "x", *DIGITS[8:]]},
            r"baseline .*b\.pt: class names differ from the candidate's: "
            r"missing \['7'\], extra \['x'\]$",
        ),
        (
            {"preprocessing": make_preprocessing(32)},
            r"baseline .*b\.pt: preprocessing differs .*: resize 32 vs 16, crop 32 vs 16$",
        ),
    ],
)
def test_an_incompatible_baseline_is_one_line_showing_the_difference(
    tmp_path, data, ckpt, extra, message
):
    save_tiny(tmp_path / "b.pt", seed=3, **extra)
    with pytest.raises(InputError, match=message) as err:
        _run(tmp_path, data, ckpt, "- {kind: top1_accuracy, min: 0}\n", baseline=tmp_path / "b.pt")
    assert "\n" not in str(err.value)


def test_a_missing_or_unreadable_baseline_names_the_file(tmp_path, data, ckpt):
    checks = "- {kind: top1_accuracy, min: 0}\n"
    with pytest.raises(InputError, match=r"^baseline .*nope\.pt: checkpoint not found"):
        _run(tmp_path, data, ckpt, checks, baseline=tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"^baseline .*junk\.pt: "):
        _run(tmp_path, data, ckpt, checks, baseline=tmp_path / "junk.pt")


def test_a_baseline_with_its_classes_in_another_order_is_matched_by_name(tmp_path, data, ckpt):
    save_tiny(tmp_path / "b.pt", seed=1, class_names=DIGITS[::-1])
    report = _run(
        tmp_path, data, ckpt, "- {kind: top1_accuracy, min: 0}\n", baseline=tmp_path / "b.pt"
    )
    assert report.exit_code == 0 and report.baseline["class_names"] == DIGITS[::-1]
