"""Intensity and colour families of ImageNet-C and CIFAR-10-C, with their parameters: brightness,
contrast, saturate, and fog (a fractal haze: the weather family here, as the other weather
corruptions of ImageNet-C need its texture files).

Brightness and saturate shift HSV value and saturation as ImageNet-C does; torchvision's
adjust_brightness (a gain) and adjust_saturation (a blend with grey) are different operations,
so both are written by hand in closed form (hue is kept, so no HSV round trip is needed).
Fog is defined, hence registered, first: ImageNet-C lists it before brightness and contrast.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qa.perturb import SPATIAL_MIN_SIZE, register
from qa.perturb.common import SampleRandom, plasma

# torch and torchvision are imported inside the functions: `import qa.perturb` imports this
# module to register its perturbations, and the torch-free commands (`qa validate`) read that
# registry.
if TYPE_CHECKING:
    import torch

BRIGHTNESS_SHIFT = {  # added to HSV value
    "imagenet_c": (0.1, 0.2, 0.3, 0.4, 0.5),
    "cifar10_c": (0.05, 0.1, 0.15, 0.2, 0.3),
}
CONTRAST_FACTOR = {
    "imagenet_c": (0.4, 0.3, 0.2, 0.1, 0.05),
    "cifar10_c": (0.75, 0.5, 0.4, 0.3, 0.15),
}
SATURATE = {  # S * a + b; severities 1-2 fade colour, 3-5 boost it
    "imagenet_c": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    "cifar10_c": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
}
FOG = {  # (haze strength, fractal decay)
    "imagenet_c": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    "cifar10_c": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
}
# (map size, crop): ImageNet-C draws a 256 map and crops 224 of it, CIFAR-10-C uses all of a 32 map
PLASMA = {"imagenet_c": (256, 224), "cifar10_c": (32, 32)}


@register("fog", "weather", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def fog(images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str) -> torch.Tensor:
    """A fractal haze added over the image, then rescaled to keep the brightest value.

    The map is drawn at the smallest power of two covering the image as the ladder's map covers
    its crop (256 covers 224; 32 covers 32), that share of it kept and resized to the image: the
    coarse levels, which make the fog's look, are the same as at the reference size, and only
    levels finer than a pixel are left out (or, above it, finer levels added).
    """
    import torchvision.transforms.v2.functional as TF

    strength, decay = FOG[ladder][severity - 1]
    map_size, map_crop = PLASMA[ladder]
    h, w = images.shape[-2:]
    size = 2 ** math.ceil(math.log2(max(h, w) * map_size / map_crop))
    crop = size * map_crop // map_size
    haze = plasma(rng, size, decay)[:, None, :crop, :crop]
    haze = TF.resize(haze, [h, w], antialias=True).to(images)
    top = images.amax((1, 2, 3), keepdim=True)
    return ((images + strength * haze) * top / (top + strength)).clamp(0, 1)


@register("brightness", "weather", imagenet_c=True, ladders=True)  # ImageNet-C's group: sunlight
def brightness(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Add to the HSV value (the largest channel), keeping hue and saturation."""
    import torch

    value = images.amax(1, keepdim=True)
    brighter = (value + BRIGHTNESS_SHIFT[ladder][severity - 1]).clamp(0, 1)
    # Hue and saturation fixed means every channel scales with V; black becomes grey.
    gain = brighter / value.clamp_min(1e-12)
    return torch.where(value > 0, images * gain, brighter).clamp(0, 1)


@register("contrast", "digital", imagenet_c=True, ladders=True)
def contrast(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Pull every pixel toward its channel's mean over the image, as the references do.

    Not torchvision's adjust_contrast: it pulls toward the mean grey level, which greys out
    a colour cast that the per-channel means keep.
    """
    means = images.mean((2, 3), keepdim=True)
    return ((images - means) * CONTRAST_FACTOR[ladder][severity - 1] + means).clamp(0, 1)


@register("saturate", "digital", imagenet_c=True, ladders=True)
def saturate(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Scale and shift the HSV saturation, keeping hue and value.

    Both ladders fade colour at severities 1-2 and boost it at 3-5.
    """
    import torch

    a, b = SATURATE[ladder][severity - 1]
    value = images.amax(1, keepdim=True)
    low = images.amin(1, keepdim=True)
    sat = torch.where(value > 0, (value - low) / value.clamp_min(1e-12), torch.zeros_like(value))
    new_sat = (sat * a + b).clamp(0, 1)
    # With hue and value fixed, each channel is V - (V - x) * S'/S.
    ratio = new_sat / sat.clamp_min(1e-12)
    scaled = value - (value - images) * ratio
    # A grey pixel has hue 0 (red) in scikit-image: red stays V, green and blue become V(1 - S').
    grey = torch.cat([value, value * (1 - new_sat), value * (1 - new_sat)], 1)
    return torch.where(sat > 0, scaled, grey).clamp(0, 1)
