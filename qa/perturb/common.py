"""Helpers shared by the perturbation families: per-sample randomness, size scaling, filters.

torch is imported inside the functions, as in the family modules: `import qa.perturb` imports
this module, and the torch-free commands (`qa validate`) read the registry it fills.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# The image size each ladder's pixel-valued parameters (radii, sigmas, lengths) are given at.
REFERENCE_SIZE = {"imagenet_c": 224, "cifar10_c": 32}


class SampleRandom:
    """Random draws made sample by sample, so row i depends only on sample i's seed.

    Each method returns a (B, *shape) tensor on the images' device; the per-sample Python loop
    covers only the draws (one small call per image), never the image arithmetic.
    """

    def __init__(self, seeds: list[int], device: torch.device):
        import torch

        self.device = torch.device(device)
        self.generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) draws, (B, *shape)."""
        import torch

        return torch.stack(
            [torch.rand(shape, generator=g, device=self.device) for g in self.generators]
        )

    def uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        """Uniform [low, high) draws, (B, *shape)."""
        return low + (high - low) * self.rand(*shape)

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal draws, (B, *shape)."""
        import torch

        return torch.stack(
            [torch.randn(shape, generator=g, device=self.device) for g in self.generators]
        )

    def poisson(self, rates: torch.Tensor) -> torch.Tensor:
        """Poisson draws with the given (B, ...) rates, one generator per row."""
        import torch

        pairs = zip(rates, self.generators, strict=True)
        return torch.stack([torch.poisson(r, generator=g) for r, g in pairs])

    def choice(self, n: int) -> torch.Tensor:
        """One integer in [0, n) per sample, (B,) int64."""
        return (self.rand() * n).long().clamp_(max=n - 1)


def size_scale(images: torch.Tensor, ladder: str) -> float:
    """The factor that turns a pixel length of `ladder` (given at 224 or 32) into one at this size."""
    return min(images.shape[-2:]) / REFERENCE_SIZE[ladder]


def filter2d(images: torch.Tensor, kernel: torch.Tensor, padding: str = "reflect") -> torch.Tensor:
    """Correlate every channel with `kernel` (kh, kw), or one kernel per image (B, kh, kw).

    Odd-sized kernels, centred; the border is extended by `padding` (F.pad modes).
    """
    import torch.nn.functional as F

    b, c, h, w = images.shape
    kh, kw = kernel.shape[-2:]
    padded = F.pad(images, [kw // 2, kw // 2, kh // 2, kh // 2], mode=padding)
    if kernel.ndim == 2:
        return F.conv2d(padded, kernel.to(images).expand(c, 1, kh, kw), groups=c)
    # One kernel per image: fold the batch into channels and convolve group-wise.
    weight = kernel.to(images).repeat_interleave(c, dim=0).unsqueeze(1)
    out = F.conv2d(padded.reshape(1, b * c, *padded.shape[-2:]), weight, groups=b * c)
    return out.reshape(b, c, h, w)


def gaussian_kernel1d(sigma: float, radius: int) -> torch.Tensor:
    """exp(-x^2 / 2 sigma^2) at the integers -radius..radius, normalised: the kernel of scipy's
    gaussian_filter and OpenCV's GaussianBlur, which the references use. (2 * radius + 1,) float64.
    """
    import torch

    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_smooth(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-smooth the last two dims with symmetric ("reflect" in scipy) borders, any sigma.

    Done in the Fourier domain on the mirrored field: its periodic extension is the infinite
    mirror extension, so sigmas larger than the image (ImageNet-C's elastic uses them) are
    handled exactly, where a reflect-padded convolution cannot pad by more than the image.
    """
    import torch

    h, w = field.shape[-2:]
    mirrored = torch.cat([field, field.flip(-1)], -1)
    mirrored = torch.cat([mirrored, mirrored.flip(-2)], -2)
    fy = torch.fft.fftfreq(2 * h, device=field.device)
    fx = torch.fft.rfftfreq(2 * w, device=field.device)
    transfer = torch.exp(-2 * math.pi**2 * sigma**2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
    smooth = torch.fft.irfft2(torch.fft.rfft2(mirrored) * transfer, s=(2 * h, 2 * w))
    return smooth[..., :h, :w]


def pixel_grid(images: torch.Tensor) -> torch.Tensor:
    """The (H, W, 2) pixel coordinates (x, y) of an image batch, as float on its device."""
    import torch

    h, w = images.shape[-2:]
    ys = torch.arange(h, dtype=images.dtype, device=images.device)
    xs = torch.arange(w, dtype=images.dtype, device=images.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)


def sample_at(images: torch.Tensor, coords: torch.Tensor, padding: str) -> torch.Tensor:
    """Bilinearly sample each image at (B, H, W, 2) pixel coordinates (x, y)."""
    import torch
    import torch.nn.functional as F

    h, w = images.shape[-2:]
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], device=coords.device)
    grid = (coords * scale - 1).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=True)


def reference_shape(images: torch.Tensor, ladder: str) -> tuple[int, int]:
    """The images' (H, W) brought to the ladder's size: the shorter side 224 or 32 px.

    The weather layers (snow, frost, spatter) are made at this size, where the references'
    parameters apply as they are, then resized to the images (`resize_to`), as fog's map is.
    """
    h, w = images.shape[-2:]
    scale = size_scale(images, ladder)
    return max(1, round(h / scale)), max(1, round(w / scale))


def resize_to(layer: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """`layer` (B, C, h, w) resized to the images' H x W (bilinear, antialiased), if it differs."""
    import torchvision.transforms.v2.functional as TF

    size = list(images.shape[-2:])
    if list(layer.shape[-2:]) == size:
        return layer
    return TF.resize(layer, size, antialias=True)


def plasma(rng: SampleRandom, size: int, decay: float) -> torch.Tensor:
    """Diamond-square fractal noise, (B, size, size) in [0, 1], one map per sample.

    ImageNet-C's plasma_fractal, vectorised over the batch (torch has no fractal noise): each
    level fills square centres then diamond centres with the mean of their neighbours plus a
    random offset whose range shrinks by `decay` per level. All draws are made up front.
    """
    import torch

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
