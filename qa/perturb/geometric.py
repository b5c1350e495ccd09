"""Geometric perturbations (not in ImageNet-C): rotate, translate, scale, hflip.

Severity ladders, chosen to span a tilted camera to a clearly misframed one:

| severity              | 1    | 2    | 3    | 4    | 5    |
|-----------------------|------|------|------|------|------|
| rotate (degrees, +/-) | 5    | 10   | 15   | 20   | 30   |
| translate (of side)   | 0.04 | 0.08 | 0.12 | 0.16 | 0.20 |
| scale (zoom out)      | 0.9  | 0.8  | 0.7  | 0.6  | 0.5  |

The sign of the rotation and the direction of the translation (one of 8 compass directions)
are drawn per sample; scale shrinks the image about its centre (the object seen from further
away). Uncovered pixels are black (0). hflip mirrors the image at every severity: a mirror has no strength.
Each variant is applied with torchvision's affine to the samples that drew it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qa.perturb import SPATIAL_MIN_SIZE, register
from qa.perturb.common import SampleRandom

# torch and torchvision are imported inside the functions: `import qa.perturb` imports this
# module to register its perturbations, and the torch-free commands (`qa validate`) read that
# registry.
if TYPE_CHECKING:
    import torch

ROTATE_DEGREES = (5, 10, 15, 20, 30)
TRANSLATE_FRACTION = (0.04, 0.08, 0.12, 0.16, 0.20)
SCALE_FACTOR = (0.9, 0.8, 0.7, 0.6, 0.5)


def _affine_by_choice(images: torch.Tensor, choice: torch.Tensor, variants: list[dict]):
    """Apply variant `choice[i]` (keyword arguments of TF.affine) to image i, a call per variant."""
    import torch
    import torchvision.transforms.v2.functional as TF

    out = torch.empty_like(images)
    for index, kwargs in enumerate(variants):
        chosen = (choice == index).nonzero().flatten()
        if len(chosen):
            params = {"angle": 0.0, "translate": [0.0, 0.0], "scale": 1.0, "shear": [0.0, 0.0]}
            params.update(kwargs)
            out[chosen] = TF.affine(
                images[chosen], **params, interpolation=TF.InterpolationMode.BILINEAR, fill=0.0
            )
    return out.clamp(0, 1)


@register("rotate", "geometric", min_size=SPATIAL_MIN_SIZE)
def rotate(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """Rotate about the centre by the severity's angle, clockwise or anticlockwise."""
    degrees = float(ROTATE_DEGREES[severity - 1])
    variants = [{"angle": degrees}, {"angle": -degrees}]
    return _affine_by_choice(images, rng.choice(2).cpu(), variants)


@register("translate", "geometric", min_size=SPATIAL_MIN_SIZE)
def translate(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """Shift by a fraction of the shorter side in one of eight directions."""
    shift = TRANSLATE_FRACTION[severity - 1] * min(images.shape[-2:])
    variants = [
        {
            "translate": [
                shift * math.cos(k * math.pi / 4),
                shift * math.sin(k * math.pi / 4),
            ]
        }
        for k in range(8)
    ]
    return _affine_by_choice(images, rng.choice(8).cpu(), variants)


@register("scale", "geometric", min_size=SPATIAL_MIN_SIZE)
def scale(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """Shrink about the centre by the severity's factor, inside a black border."""
    import torch

    choice = torch.zeros(len(images), dtype=torch.long)
    return _affine_by_choice(images, choice, [{"scale": SCALE_FACTOR[severity - 1]}])


@register("hflip", "geometric", graded=False)
def hflip(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """Mirror left to right (the same image at every severity)."""
    import torchvision.transforms.v2.functional as TF

    return TF.hflip(images)
