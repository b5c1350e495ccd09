"""Blur families of ImageNet-C; pixel-valued parameters scaled by min(H, W) / 224.

Defocus (disc) and motion (line) kernels are written by hand: torchvision has only the
Gaussian blur. Both kernels are built by splatting sub-pixel sample points bilinearly, so a
radius scaled below one pixel still blurs a little instead of rounding to the identity.
"""

import math

import torch
import torchvision.transforms.v2.functional as TF

from qa.perturb.common import (
    SampleRandom,
    filter2d,
    pixel_grid,
    sample_at,
    size_scale,
    splat_kernel,
)

DEFOCUS_RADIUS = (3, 4, 6, 8, 10)  # pixels at 224; ImageNet-C's alias blur is replaced by the splat
MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))  # ImageMagick (radius, sigma) at 224
MOTION_ANGLE = 45  # degrees either side of horizontal, drawn per sample
ZOOM_FACTORS = (
    (1.0, 1.11, 0.01),
    (1.0, 1.16, 0.01),
    (1.0, 1.21, 0.02),
    (1.0, 1.26, 0.02),
    (1.0, 1.31, 0.03),
)  # numpy arange(start, stop, step) of zoom factors, as in ImageNet-C
GAUSSIAN_SIGMA = (1, 2, 3, 4, 6)  # pixels at 224
SUBSAMPLES = 8  # sub-pixel points per pixel along each axis when drawing kernels


def defocus_blur(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """An out-of-focus lens: the mean of the image over a disc (the same disc for every image)."""
    r = DEFOCUS_RADIUS[severity - 1] * size_scale(images)
    radius = math.ceil(r) + 1
    n = math.ceil(r * SUBSAMPLES)
    axis = torch.arange(-n, n + 1, dtype=torch.float64) / SUBSAMPLES
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([gx, gy], -1).reshape(-1, 2)
    inside = points.square().sum(-1) <= r * r
    points = points[inside]
    kernel = splat_kernel(points, torch.ones(len(points), dtype=torch.float64), radius)
    return filter2d(images, kernel.float()).clamp(0, 1)


def motion_blur(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """Camera shake: a one-sided streak at a random angle, weighted like ImageMagick's motion blur.

    ImageMagick's kernel has 2 * radius + 1 taps along the line with weights exp(-t^2 / 2 sigma^2);
    here the taps are at every pixel step, sampled bilinearly, and the edge is replicated
    (ImageMagick's default virtual pixels). torchvision has no motion blur.
    """
    scale = size_scale(images)
    radius, sigma = (v * scale for v in MOTION[severity - 1])
    angle = torch.deg2rad(rng.uniform(-MOTION_ANGLE, MOTION_ANGLE)).to(images)
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], -1)  # (B, 2)
    taps = torch.arange(0, math.ceil(2 * radius) + 1, dtype=images.dtype, device=images.device)
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    grid = pixel_grid(images)[None]
    out = torch.zeros_like(images)
    for t, weight in zip(taps, weights, strict=True):
        shifted = grid + (t * direction)[:, None, None, :]
        out += weight * sample_at(images, shifted, "border")
    return out.clamp(0, 1)


def zoom_blur(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """A zoom during exposure: the mean of the image and its centre zooms by each factor."""
    start, stop, step = ZOOM_FACTORS[severity - 1]
    factors = [start + i * step for i in range(math.ceil((stop - start) / step - 1e-9))]
    out = images.clone()
    for factor in factors:
        out += TF.affine(
            images,
            angle=0.0,
            translate=[0.0, 0.0],
            scale=factor,
            shear=[0.0, 0.0],
            interpolation=TF.InterpolationMode.BILINEAR,
        )
    return (out / (len(factors) + 1)).clamp(0, 1)


def gaussian_blur(images: torch.Tensor, severity: int, rng: SampleRandom) -> torch.Tensor:
    """Gaussian blur, truncated at 4 sigma as scikit-image's `gaussian` that ImageNet-C uses.

    Not torchvision's gaussian_blur: it samples the Gaussian at whole pixels, so the sigmas
    that scaling gives small images (0.14 px for severity 1 at 32x32) become the identity.
    The kernel here is splatted like the others, and applied separably.
    """
    sigma = GAUSSIAN_SIGMA[severity - 1] * size_scale(images)
    radius = math.ceil(4 * sigma) + 1
    n = math.ceil(4 * sigma * SUBSAMPLES)
    t = torch.arange(-n, n + 1, dtype=torch.float64) / SUBSAMPLES
    points = torch.stack([t, torch.zeros_like(t)], -1)
    row = splat_kernel(points, torch.exp(-(t**2) / (2 * sigma**2)), radius)[radius].float()
    return filter2d(filter2d(images, row[None]), row[:, None]).clamp(0, 1)
