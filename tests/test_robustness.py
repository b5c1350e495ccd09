"""Robustness metrics against hand-worked values, the checks on made-up evidence, the params
schema, and the FGSM/PGD attacks on a small model trained here on the real digits."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torchvision.transforms import v2

import qa.perturb
from qa.adversarial import Attack, attack, attack_view, parse_attack
from qa.checks import REGISTRY, load_all
from qa.checks.robustness import (
    AdversarialAccuracyParams,
    CorruptionAccuracyParams,
    MeanCorruptionErrorParams,
    PredictionConsistencyParams,
)
from qa.evidence import CLEAN, Evidence, View
from qa.metrics import robustness as rob

load_all()


def test_mce_and_relative_mce_match_a_hand_worked_example():
    errors = {"f1": [0.2, 0.4], "f2": [0.3, 0.5]}
    reference = {"f1": [0.4, 0.6], "f2": [0.3, 0.3]}
    out = rob.mean_corruption_error(errors, 0.1, reference, 0.2)
    # CE: 0.6 / 1.0 and 0.8 / 0.6; relative: (0.1 + 0.3) / (0.2 + 0.4) and (0.2 + 0.4) / (0.1 + 0.1)
    assert out["ce"] == pytest.approx({"f1": 0.6, "f2": 4 / 3})
    assert out["mce"] == pytest.approx((0.6 + 4 / 3) / 2)
    assert out["relative_ce"] == pytest.approx({"f1": 2 / 3, "f2": 3.0})
    assert out["relative_mce"] == pytest.approx((2 / 3 + 3.0) / 2)


def test_clean_reference_and_undefined_quotients():
    errors = {"f": [0.2, 0.3]}
    out = rob.mean_corruption_error(errors, 0.1, rob.clean_reference(errors, 0.1), 0.0)
    assert out["mce"] == pytest.approx(2.5)  # mean error 0.25 over clean error 0.1
    assert out["relative_mce"] == pytest.approx(1.5)  # (0.1 + 0.2) / (0.1 + 0.1)
    flat = rob.mean_corruption_error(errors, 0.1, {"f": [0.2, 0.2]}, 0.2)
    assert np.isnan(flat["relative_mce"])  # the reference loses nothing: no ratio
    with pytest.raises(ValueError, match="equal length"):
        rob.corruption_error([0.1], [0.1, 0.2])


def test_error_and_flip_rates():
    logits = np.eye(3)[[0, 1, 2, 2]]
    assert rob.error_rate(logits, np.array([0, 1, 2, 0])) == 0.25
    assert rob.flip_rate(logits, np.eye(3)[[0, 1, 1, 1]]) == 0.5


def _evidence(labels, predictions: dict[View, list[int]]) -> Evidence:
    """Evidence whose views predict the given classes (one-hot logits)."""
    labels = np.asarray(labels)
    arrays = {v: np.eye(3, dtype=np.float32)[p] * 5 for v, p in predictions.items()}
    return Evidence(["a", "b", "c"], labels, [f"s{i}" for i in range(len(labels))], arrays)


LABELS = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


def _wrong(k: int) -> list[int]:
    """Predictions with the first k of LABELS wrong."""
    return [(y + 1) % 3 if i < k else y for i, y in enumerate(LABELS)]


def noise(s: int, model: str = "candidate") -> View:
    return View(model=model, perturbation="gaussian_noise", severity=s)


def test_corruption_accuracy_gates_the_worst_view_and_the_drop():
    ev = _evidence(LABELS, {CLEAN: _wrong(0), noise(1): _wrong(2), noise(2): _wrong(4)})
    p = CorruptionAccuracyParams(perturbations=["gaussian_noise"], severities=[1, 2], min=0.7)
    result = REGISTRY["corruption_accuracy"].fn(ev, p)
    assert result.status == "fail" and "gaussian_noise s2" in result.message
    assert result.metrics["worst_accuracy"] == pytest.approx(0.6)
    assert result.details["curves"] == {
        "gaussian_noise": [{"severity": 1, "accuracy": 0.8}, {"severity": 2, "accuracy": 0.6}]
    }
    p = p.model_copy(update={"min": None, "max_relative_drop": 0.5})
    result = REGISTRY["corruption_accuracy"].fn(ev, p)
    assert result.status == "pass" and result.metrics["worst_relative_drop"] == pytest.approx(0.4)
    both = p.model_copy(update={"min": 0.7})
    assert REGISTRY["corruption_accuracy"].fn(ev, both).threshold["metric"] == "worst_accuracy"


def test_mce_uses_the_baseline_when_there_is_one_and_says_so():
    views = {CLEAN: _wrong(1), noise(1): _wrong(2), noise(2): _wrong(4)}
    p = MeanCorruptionErrorParams(perturbations=["gaussian_noise"], severities=[1, 2], max=1.0)
    assert View(model="baseline") in p.views()
    clean_only = REGISTRY["mean_corruption_error"].fn(_evidence(LABELS, views), p)
    assert clean_only.metrics["mce"] == pytest.approx(3.0)  # (0.2 + 0.4) / 2 / 0.1
    assert "clean error (no baseline)" in clean_only.message and clean_only.status == "fail"
    base = {View(model="baseline"): _wrong(2), noise(1, "baseline"): _wrong(4)}
    base[noise(2, "baseline")] = _wrong(8)
    with_base = REGISTRY["mean_corruption_error"].fn(_evidence(LABELS, views | base), p)
    assert with_base.metrics["mce"] == pytest.approx(0.5)  # 0.6 / 1.2
    assert with_base.metrics["relative_mce"] == pytest.approx(0.5)  # (0.1 + 0.3) / (0.2 + 0.6)
    assert with_base.status == "pass" and "baseline's errors" in with_base.message
    curve = with_base.details["curves"]["gaussian_noise"][1]
    assert curve == {"severity": 2, "accuracy": 0.6, "baseline_accuracy": pytest.approx(0.2)}
    strict = p.model_copy(update={"reference": "baseline"})
    assert REGISTRY["mean_corruption_error"].fn(_evidence(LABELS, views), strict).status == "error"
    clean = p.model_copy(update={"reference": "clean"})
    assert View(model="baseline") not in clean.views()


def test_prediction_consistency_gates_the_worst_flip_rate():
    ev = _evidence(LABELS, {CLEAN: _wrong(1), noise(1): _wrong(0), noise(2): _wrong(3)})
    p = PredictionConsistencyParams(perturbations=["gaussian_noise"], severities=[1, 2], max=0.15)
    result = REGISTRY["prediction_consistency"].fn(ev, p)
    assert result.metrics["worst_flip_rate"] == pytest.approx(0.2)
    assert result.status == "fail" and "gaussian_noise s2" in result.message


def test_adversarial_accuracy_reads_one_view_per_attack():
    p = AdversarialAccuracyParams(eps=0.03, steps=5, min=0.5)
    clean, fgsm, pgd = p.views()
    assert (fgsm.kind, fgsm.perturbation) == ("adversarial", "fgsm:eps=0.03,space=pixel")
    assert parse_attack(pgd.perturbation) == Attack("pgd", 0.03, 5, 2.5 * 0.03 / 5, "pixel")
    missing = REGISTRY["adversarial_accuracy"].fn(_evidence(LABELS, {CLEAN: LABELS}), p)
    assert missing.status == "error" and "pgd:eps=0.03" in missing.message
    ev = _evidence(LABELS, {clean: LABELS, fgsm: _wrong(3), pgd: _wrong(6)})
    result = REGISTRY["adversarial_accuracy"].fn(ev, p)
    assert result.metrics["pgd_accuracy"] == pytest.approx(0.4) and result.status == "fail"
    assert "PGD" in result.message


def test_params_reject_unknown_names_bad_severities_and_no_gate():
    known = r"unknown perturbation 'gausian_noise'.*known perturbations: brightness, contrast, "
    with pytest.raises(ValidationError, match=known):
        CorruptionAccuracyParams(perturbations=["gausian_noise"], min=0.5)
    with pytest.raises(ValidationError, match="less than or equal to 5"):
        CorruptionAccuracyParams(perturbations=["fog"], severities=[1, 6], min=0.5)
    with pytest.raises(ValidationError, match="lists a value twice"):
        CorruptionAccuracyParams(perturbations=["fog", "fog"], min=0.5)
    with pytest.raises(ValidationError, match="give `min`, `max_relative_drop` or both"):
        CorruptionAccuracyParams(perturbations=["fog"])
    with pytest.raises(ValueError, match="Expected 'method:eps="):
        parse_attack("pgd:eps=0.1,radius=2")


def test_a_registered_perturbation_is_a_valid_suite_name(monkeypatch):
    monkeypatch.setattr(qa.perturb, "PERTURBATIONS", dict(qa.perturb.PERTURBATIONS))
    with pytest.raises(ValidationError):
        CorruptionAccuracyParams(perturbations=["darken"], min=0.5)
    qa.perturb.register_perturbation("darken", lambda x, s, rng: x * 0.5, "digital")
    assert CorruptionAccuracyParams(perturbations=["darken"], min=0.5).views()[1].perturbation


@pytest.fixture(scope="module")
def digits_model():
    """A softmax regression on the real 8x8 digits as RGB [0, 1] images, trained in a second."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images / 16, dtype=torch.float32)[:, None].expand(-1, 3, -1, -1)
    labels = torch.tensor(digits.target)
    normalize = v2.Normalize([0.3] * 3, [0.4, 0.4, 0.2])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    train, test = slice(0, 1400), slice(1400, None)
    for _ in range(80):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(normalize(images[train])), labels[train])
        loss.backward()
        opt.step()
    model.eval().zero_grad(set_to_none=True)
    return model, normalize, images[test].contiguous(), labels[test]


def _accuracy(model, normalize, images, labels) -> float:
    with torch.no_grad():
        return float((model(normalize(images)).argmax(1) == labels).float().mean())


def test_fgsm_and_pgd_lower_the_accuracy_of_a_trained_model(digits_model):
    model, normalize, images, labels = digits_model
    clean = _accuracy(model, normalize, images, labels)
    assert clean > 0.9
    with torch.inference_mode():  # as the engine calls it
        adv = attack(model, images, labels, normalize, "fgsm", eps=0.1)
    fgsm = _accuracy(model, normalize, adv, labels)
    assert fgsm < clean - 0.2, (clean, fgsm)
    assert (adv - images).abs().max() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert all(p.grad is None for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    adv = attack(model, images, labels, normalize, "pgd", 0.1, steps=10, alpha=0.025, generator=gen)
    assert _accuracy(model, normalize, adv, labels) <= fgsm + 0.02
    view = AdversarialAccuracyParams(attacks=["pgd"], eps=0.1, min=0.5).views()[1]
    gen = torch.Generator().manual_seed(0)
    torch.testing.assert_close(attack_view(model, images, labels, normalize, view, gen), adv)


def test_normalized_space_measures_eps_in_units_of_the_channel_std(digits_model):
    model, normalize, images, labels = digits_model
    adv = attack(model, images, labels, normalize, "fgsm", eps=0.25, space="normalized")
    reach = (adv - images).abs().amax((0, 2, 3))
    assert reach.tolist() == pytest.approx([0.1, 0.1, 0.05], abs=1e-6)
