"""Blur families of ImageNet-C and CIFAR-10-C; pixel-valued parameters scaled to the image size.

The kernels are the references' own: defocus is their aliased disc smoothed by a small
Gaussian, the Gaussian blur is sampled at whole pixels as scikit-image's, and the zoom blur
averages zooms made as scipy's `zoom` makes them. Motion blur is ImageMagick's, which the
references call through Wand (torch and torchvision have no motion blur). Glass blur shuffles
pixels at once where the references loop over them one by one (see `glass_blur`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from qa.perturb import SPATIAL_MIN_SIZE, register
from qa.perturb.common import (
    SampleRandom,
    filter2d,
    gaussian_kernel1d,
    pixel_grid,
    sample_at,
    size_scale,
)

# torch is imported inside the functions: `import qa.perturb` imports this module to register
# its perturbations, and the torch-free commands (`qa validate`) read that registry.
if TYPE_CHECKING:
    import torch

DEFOCUS = {  # (disc radius, anti-alias sigma), pixels at the ladder's image size
    "imagenet_c": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "cifar10_c": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
}
MOTION = {  # ImageMagick's (radius, sigma), pixels at the ladder's image size
    "imagenet_c": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "cifar10_c": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
}
MOTION_ANGLE = 45  # degrees either side of horizontal, drawn per sample
# The zoom factors are numpy's arange, floating point included, as in the references: ImageNet-C's
# severity 1 is arange(1, 1.11, 0.01), which ends at 1.11 (12 factors, not 11).
ZOOM_FACTORS = {
    "imagenet_c": tuple(
        np.arange(1, stop, step)
        for stop, step in ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))
    ),
    "cifar10_c": tuple(np.arange(1, stop, 0.01) for stop in (1.06, 1.11, 1.16, 1.21, 1.26)),
}
GAUSSIAN_SIGMA = {  # pixels at the ladder's image size
    "imagenet_c": (1, 2, 3, 4, 6),
    "cifar10_c": (0.4, 0.6, 0.7, 0.8, 1),
}
GLASS = {  # (Gaussian sigma, largest pixel hop, iterations); sigma and hop in pixels
    "imagenet_c": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "cifar10_c": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
}


def _disc(radius: float, alias_sigma: float) -> torch.Tensor:
    """The references' defocus kernel, float64 (k, k).

    The pixels within `radius` of the centre (on a grid of at least 17x17), normalised, then
    smoothed by a 3x3 Gaussian of `alias_sigma` (5x5 past radius 8) with mirrored edges, as
    OpenCV's GaussianBlur: below a pixel of radius the smoothing is all the blur there is.
    """
    import torch

    n = max(8, math.floor(radius))
    axis = torch.arange(-n, n + 1, dtype=torch.float64)
    disc = ((axis[:, None] ** 2 + axis[None] ** 2) <= radius**2).double()
    smooth = gaussian_kernel1d(alias_sigma, 1 if radius <= 8 else 2)
    disc = filter2d((disc / disc.sum())[None, None], smooth[None])
    return filter2d(disc, smooth[:, None])[0, 0]


@register("defocus_blur", "blur", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def defocus_blur(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """An out-of-focus lens: the mean of the image over a disc (the same disc for every image)."""
    scale = size_scale(images, ladder)
    radius, alias_sigma = DEFOCUS[ladder][severity - 1]
    return filter2d(images, _disc(radius * scale, alias_sigma * scale).float()).clamp(0, 1)


def gaussian_filter(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """scikit-image's `gaussian`, as the references call it: the Gaussian sampled at whole
    pixels, cut at 4 sigma, edges repeated."""
    row = gaussian_kernel1d(sigma, int(4 * sigma + 0.5)).float()
    return filter2d(filter2d(images, row[None], "replicate"), row[:, None], "replicate")


@register("glass_blur", "blur", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def glass_blur(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Frosted glass: blur, shuffle pixels locally, blur again, as the references.

    The references swap every pixel, one after another, with one up to `hop` pixels away (a
    sequential loop whose carried pixels drift further). Here each iteration moves every
    pixel at once: it takes the value two independent hops away, each uniform in
    [-hop, hop] per axis, by one bilinear gather (whole pixels at the ladder's size, scaled
    with it). It changes an image as much as the references' within 8% (see qa.perturb).
    The first blur is rounded down to 8 bits, as there.
    """
    import torch

    scale = size_scale(images, ladder)
    sigma, hop, iterations = GLASS[ladder][severity - 1]
    out = torch.floor(gaussian_filter(images, sigma * scale).clamp(0, 1) * 255) / 255
    grid = pixel_grid(images)[None]
    # The references visit the pixels from hop + 1 to the side - hop: the rest only move when
    # a visited pixel swaps with them.
    h, w = images.shape[-2:]
    low, high = (hop + 1) * scale, (hop - 1) * scale
    inside = (grid >= low) & (grid <= grid.new_tensor([w - 1, h - 1]) - high)
    inside = inside.all(-1, keepdim=True)
    for _ in range(iterations):
        hops = rng.rand(2, 2, *images.shape[-2:]).to(images).mul(2 * hop + 1).floor() - hop
        offset = (hops[:, 0] + hops[:, 1]).permute(0, 2, 3, 1) * scale  # (B, H, W, 2): x, y
        out = sample_at(out, grid + offset * inside, "border")
    return gaussian_filter(out, sigma * scale).clamp(0, 1)


def motion_streak(
    images: torch.Tensor, radius: float, sigma: float, angle: torch.Tensor
) -> torch.Tensor:
    """ImageMagick's motion blur of each image along its own `angle` (B,) in degrees.

    The kernel has 2 * ceil(radius) + 1 taps with weights exp(-i^2 / 2 sigma^2); tap i reads
    the pixel i steps along the angle, rounded to whole pixels, and the edge is repeated
    (ImageMagick's default virtual pixels). Each tap is one gather, with offsets per image.
    Any channel count: snow streaks a one-channel layer with it.
    """
    import torch

    taps = torch.arange(2 * math.ceil(radius) + 1, dtype=torch.float64)
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    weights = (weights / weights.sum()).tolist()
    # The whole-pixel offsets are worked out on the CPU in float64, the same on every device.
    angle = torch.deg2rad(angle.cpu().double())
    b, c, h, w = images.shape
    ys = torch.arange(h, device=images.device)
    xs = torch.arange(w, device=images.device)
    flat = images.flatten(2)
    out = torch.zeros_like(flat)
    for i, weight in enumerate(weights):
        dx = torch.ceil(i * torch.cos(angle) - 0.5).long().to(images.device)
        dy = torch.ceil(i * torch.sin(angle) - 0.5).long().to(images.device)
        rows = (ys[None] + dy[:, None]).clamp(0, h - 1)
        cols = (xs[None] + dx[:, None]).clamp(0, w - 1)
        index = (rows[:, :, None] * w + cols[:, None, :]).flatten(1)
        out += weight * flat.gather(2, index[:, None].expand(b, c, -1))
    return out.reshape(images.shape)


@register("motion_blur", "blur", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def motion_blur(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Camera shake: a one-sided streak at a random angle within 45 degrees of horizontal,
    as ImageMagick's motion blur (`motion_streak`)."""
    scale = size_scale(images, ladder)
    radius, sigma = (v * scale for v in MOTION[ladder][severity - 1])
    angle = rng.uniform(-MOTION_ANGLE, MOTION_ANGLE)
    return motion_streak(images, radius, sigma, angle).clamp(0, 1)


def _clipped_zoom(images: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom into the centre as the references do: crop ceil(side / factor) pixels about the
    centre, resize them by `factor` (bilinear with aligned corners, as scipy's order-1 zoom)
    and keep the top-left H x W."""
    import torch.nn.functional as F

    h, w = images.shape[-2:]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = images[..., top : top + ch, left : left + cw]
    size = [round(ch * factor), round(cw * factor)]
    return F.interpolate(crop, size=size, mode="bilinear", align_corners=True)[..., :h, :w]


@register("zoom_blur", "blur", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def zoom_blur(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """A zoom during exposure: the mean of the image and its centre zooms by each factor."""
    factors = ZOOM_FACTORS[ladder][severity - 1]
    out = images.clone()
    for factor in factors:
        out += _clipped_zoom(images, float(factor))
    return (out / (len(factors) + 1)).clamp(0, 1)


@register("gaussian_blur", "blur", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def gaussian_blur(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Gaussian blur as scikit-image's `gaussian` that the references use: the Gaussian sampled
    at whole pixels and cut at 4 sigma (so a sigma well below a pixel barely blurs, as there)."""
    sigma = GAUSSIAN_SIGMA[ladder][severity - 1] * size_scale(images, ladder)
    return gaussian_filter(images, sigma).clamp(0, 1)
