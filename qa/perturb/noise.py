"""Noise families of ImageNet-C, with its and CIFAR-10-C's severity parameters.

The parameters are relative to the intensity, so they are not scaled with the image size.
torchvision has no noise operations, so all four are written by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qa.perturb import register
from qa.perturb.common import SampleRandom

# torch is imported inside the functions: `import qa.perturb` imports this module to register
# its perturbations, and the torch-free commands (`qa validate`) read that registry.
if TYPE_CHECKING:
    import torch

GAUSSIAN_SIGMA = {
    "imagenet_c": (0.08, 0.12, 0.18, 0.26, 0.38),
    "cifar10_c": (0.04, 0.06, 0.08, 0.09, 0.10),
}
SHOT_PHOTONS = {  # photons per unit intensity: fewer is noisier
    "imagenet_c": (60, 25, 12, 5, 3),
    "cifar10_c": (500, 250, 100, 75, 50),
}
IMPULSE_AMOUNT = {
    "imagenet_c": (0.03, 0.06, 0.09, 0.17, 0.27),
    "cifar10_c": (0.01, 0.02, 0.03, 0.05, 0.07),
}
SPECKLE_SIGMA = {  # of the multiplicative noise
    "imagenet_c": (0.15, 0.2, 0.35, 0.45, 0.6),
    "cifar10_c": (0.06, 0.1, 0.12, 0.16, 0.2),
}


@register("gaussian_noise", "noise", imagenet_c=True, ladders=True)
def gaussian_noise(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Additive white Gaussian noise (sensor read noise)."""
    sigma = GAUSSIAN_SIGMA[ladder][severity - 1]
    return (images + sigma * rng.randn(*images.shape[1:]).to(images)).clamp(0, 1)


@register("shot_noise", "noise", imagenet_c=True, ladders=True)
def shot_noise(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Poisson (photon-counting) noise: each value becomes Poisson(x * c) / c."""
    photons = SHOT_PHOTONS[ladder][severity - 1]
    return (rng.poisson(images * photons) / photons).clamp(0, 1).to(images.dtype)


@register("impulse_noise", "noise", imagenet_c=True, ladders=True)
def impulse_noise(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Salt-and-pepper noise: a fraction of the values (per channel) set to 0 or 1, half each.

    As scikit-image's random_noise(mode="s&p") that ImageNet-C uses.
    """
    import torch

    amount = IMPULSE_AMOUNT[ladder][severity - 1]
    draws = rng.rand(2, *images.shape[1:]).to(images)
    hit, salt = draws[:, 0] < amount, (draws[:, 1] < 0.5).to(images.dtype)
    return torch.where(hit, salt, images)


@register("speckle_noise", "noise", imagenet_c=True, ladders=True)  # ImageNet-C's held-out noise
def speckle_noise(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Multiplicative Gaussian noise, x + x * n: stronger in bright regions, none in black."""
    sigma = SPECKLE_SIGMA[ladder][severity - 1]
    return (images * (1 + sigma * rng.randn(*images.shape[1:]).to(images))).clamp(0, 1)
