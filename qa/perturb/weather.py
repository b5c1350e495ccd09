"""Snow and frost of ImageNet-C and CIFAR-10-C, with their severity parameters.

Each draws a layer (snowflakes, an ice texture) at the ladder's own size, where the references'
parameters apply as they are (the shorter side 224 or 32 px, `reference_shape`), and resizes
it to the image, as fog's map: flakes and crystals keep their size relative to the image.

Frost is not the references': they blend one of five frost photographs that are not ours to
ship. Here the ice is procedural, seeded per sample: a fractal haze of frosted glass under
needle crystals (bright streaks from scattered seeds, in four directions), tinted the pale
blue-grey of the photographs' average. The blend weights are the references'; the fidelity
test compares how much it changes an image with the photographs' (see qa.perturb).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qa.perturb import SPATIAL_MIN_SIZE, register
from qa.perturb.blur import motion_streak
from qa.perturb.common import SampleRandom, plasma, reference_shape, resize_to

# torch is imported inside the functions: `import qa.perturb` imports this module to register
# its perturbations, and the torch-free commands (`qa validate`) read that registry.
if TYPE_CHECKING:
    import torch

# (flake mean, flake spread, flake zoom, cut-off, streak radius, streak sigma, image kept):
# a Gaussian field zoomed into flakes, values under the cut-off dropped, motion-blurred
SNOW = {
    "imagenet_c": (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
    "cifar10_c": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
}
SNOW_ANGLE = (-135, -45)  # degrees: the flakes fall within 45 degrees of vertical
GREY = (0.299, 0.587, 0.114)  # OpenCV's RGB to grey weights, which the references use
# (image weight, ice weight)
FROST = {
    "imagenet_c": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "cifar10_c": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
}
# Crystal length in pixels at the ladder's size: CIFAR-10-C shrinks its photographs 5x.
CRYSTAL_RADIUS = {"imagenet_c": 12, "cifar10_c": 3}
CRYSTAL_DENSITY = 0.004  # seeds per pixel, at the ladder's size and at CIFAR-10-C's alike
ICE_TINT = (0.87, 0.95, 1.0)  # the frost photographs' mean colour, relative to their blue
ICE_BASE, ICE_HAZE, ICE_CRYSTAL = 0.45, 0.35, 0.9  # grey level, haze and crystal strengths


def _flakes(images: torch.Tensor, rng: SampleRandom, params: tuple, ladder: str) -> torch.Tensor:
    """The references' snow layer, (B, 1, h, w) at the ladder's size, on 8-bit levels."""
    import torch
    import torch.nn.functional as F

    mean, spread, zoom, cut, radius, sigma, _ = params
    h, w = reference_shape(images, ladder)
    # The references draw h x w and zoom into its centre ceil(side / zoom): the same as
    # drawing that crop alone.
    ch, cw = math.ceil(h / zoom), math.ceil(w / zoom)
    field = mean + spread * rng.randn(1, ch, cw).to(images)
    size = [round(ch * zoom), round(cw * zoom)]
    layer = F.interpolate(field, size=size, mode="bilinear", align_corners=True)[..., :h, :w]
    layer = torch.where(layer < cut, 0, layer).clamp(0, 1)
    layer = motion_streak(layer, radius, sigma, rng.uniform(*SNOW_ANGLE))
    return torch.round(layer * 255) / 255


@register("snow", "weather", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def snow(images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str) -> torch.Tensor:
    """Falling snow: streaked flakes added twice (the layer and its half-turn) over an image
    whitened toward 1.5 x its grey level + 0.5, as the references."""
    import torch

    params = SNOW[ladder][severity - 1]
    layer = resize_to(_flakes(images, rng, params, ladder), images)
    keep = params[-1]
    grey = torch.einsum("bchw,c->bhw", images, images.new_tensor(GREY))[:, None]
    whitened = torch.maximum(images, grey * 1.5 + 0.5)
    out = keep * images + (1 - keep) * whitened
    return (out + layer + layer.flip(-2, -1)).clamp(0, 1)


def ice(images: torch.Tensor, rng: SampleRandom, ladder: str) -> torch.Tensor:
    """A procedural frost texture per sample, (B, 3, H, W) in [0, 1], seeded by `rng`.

    Made at the ladder's size: a fractal haze (frosted glass) in [ICE_BASE, ICE_BASE +
    ICE_HAZE], brightened toward white along needle crystals, which are seeds streaked both
    ways by ImageMagick's motion blur in four directions 45 degrees apart (a random turn per
    sample), then tinted ICE_TINT. Not the references' photographs, which are not ours.
    """
    import torch

    h, w = reference_shape(images, ladder)
    haze = plasma(rng, 2 ** math.ceil(math.log2(max(h, w, 2))), 2.0)[:, None, :h, :w]
    radius = CRYSTAL_RADIUS[ladder]
    seeds = (rng.rand(1, h, w) < CRYSTAL_DENSITY).to(images)
    direction = rng.choice(4)[:, None, None, None].expand_as(seeds).to(images.device)
    turn = rng.uniform(0, 45)
    needles = torch.zeros_like(seeds)
    for k in range(4):
        own = seeds * (direction == k)
        for side in (0, 180):
            needles += motion_streak(own, radius, radius / 2, turn + 45 * k + side)
    needles = (needles * radius).clamp(0, 1)  # a seed's streak peaks near 1 / radius
    grey = ICE_BASE + ICE_HAZE * haze.to(images)
    grey = grey + (1 - grey) * ICE_CRYSTAL * needles
    return resize_to(grey * images.new_tensor(ICE_TINT)[:, None, None], images).clamp(0, 1)


@register("frost", "weather", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def frost(images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str) -> torch.Tensor:
    """Ice on the lens: the image dimmed and a frost texture (`ice`, procedural) added over it,
    with the references' weights."""
    kept, added = FROST[ladder][severity - 1]
    return (kept * images + added * ice(images, rng, ladder)).clamp(0, 1)
