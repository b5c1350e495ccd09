"""Intensity and colour families of ImageNet-C, with its parameters: brightness, contrast, saturate,
and fog (a fractal haze: the weather family here, as the other weather corruptions of ImageNet-C
need its texture files).

Brightness and saturate shift HSV value and saturation as ImageNet-C does; torchvision's
adjust_brightness (a gain) and adjust_saturation (a blend with grey) are different operations,
so both are written by hand in closed form (hue is kept, so no HSV round trip is needed).
"""

import math

import torch
import torchvision.transforms.v2.functional as TF

from qa.perturb.common import SampleRandom

BRIGHTNESS_SHIFT = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to HSV value
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)
SATURATE = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))  # S * a + b; 1-2 fade, 3-5 boost
FOG = ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4))  # (haze strength, fractal decay)
PLASMA_SIZE, PLASMA_CROP = 256, 224  # ImageNet-C draws a 256 map and crops 224 of it


def brightness(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """Add to the HSV value (the largest channel), keeping hue and saturation."""
    value = images.amax(1, keepdim=True)
    brighter = (value + BRIGHTNESS_SHIFT[severity - 1]).clamp(0, 1)
    # Hue and saturation fixed means every channel scales with V; black becomes grey.
    gain = brighter / value.clamp_min(1e-12)
    return torch.where(value > 0, images * gain, brighter).clamp(0, 1)


def contrast(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """Pull every pixel toward the image mean (torchvision: the grey mean, ImageNet-C: per channel)."""
    return TF.adjust_contrast(images, CONTRAST_FACTOR[severity - 1]).clamp(0, 1)


def saturate(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """Scale and shift the HSV saturation, keeping hue and value.

    ImageNet-C's ladder fades colour at severities 1-2 and boosts it at 3-5.
    """
    a, b = SATURATE[severity - 1]
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


def plasma(rng: SampleRandom, size: int, decay: float) -> torch.Tensor:
    """Diamond-square fractal noise, (B, size, size) in [0, 1], one map per sample.

    ImageNet-C's plasma_fractal, vectorised over the batch (torch has no fractal noise): each
    level fills square centres then diamond centres with the mean of their neighbours plus a
    random offset whose range shrinks by `decay` per level. All draws are made up front.
    """
    b = len(rng)
    levels = int(math.log2(size))
    need = sum(3 * (size >> level) ** 2 for level in range(1, levels + 1))
    draws = rng.uniform(-1, 1, need)
    used = 0

    def wibbled(mean: torch.Tensor) -> torch.Tensor:
        nonlocal used
        n = mean.shape[-2] * mean.shape[-1]
        noise = draws[:, used : used + n].reshape(mean.shape)
        used += n
        return mean / 4 + wibble * wibble * noise

    field = torch.zeros(b, size, size, device=rng.device)
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        corner = field[:, ::step, ::step]
        square = corner + corner.roll(-1, 1)
        field[:, half::step, half::step] = wibbled(square + square.roll(-1, 2))
        centre = field[:, half::step, half::step]
        corner = field[:, ::step, ::step]
        left = centre + centre.roll(1, 1) + corner + corner.roll(-1, 2)
        field[:, ::step, half::step] = wibbled(left)
        top = centre + centre.roll(1, 2) + corner + corner.roll(-1, 1)
        field[:, half::step, ::step] = wibbled(top)
        step, wibble = half, wibble / decay
    field = field - field.amin((1, 2), keepdim=True)
    return field / field.amax((1, 2), keepdim=True)


def fog(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """A fractal haze added over the image, then rescaled to keep the brightest value.

    The map is drawn at the smallest power of two covering the image as 256 covers 224, its
    top-left 7/8 kept and resized to the image: the coarse levels, which make the fog's look,
    are the same as at 224 and only levels finer than a pixel are left out.
    """
    strength, decay = FOG[severity - 1]
    h, w = images.shape[-2:]
    size = 2 ** math.ceil(math.log2(max(h, w) * PLASMA_SIZE / PLASMA_CROP))
    crop = size * PLASMA_CROP // PLASMA_SIZE
    haze = plasma(rng, size, decay)[:, None, :crop, :crop]
    haze = TF.resize(haze, [h, w], antialias=True).to(images)
    top = images.amax((1, 2, 3), keepdim=True)
    return ((images + strength * haze) * top / (top + strength)).clamp(0, 1)
