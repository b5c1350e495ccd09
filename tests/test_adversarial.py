"""FGSM and PGD attacks on a small model trained here on the real digits."""

import pytest
import torch
from torchvision.transforms import v2

from qa.adversarial import attack, attack_view
from qa.checks.robustness import AdversarialAccuracyParams


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
