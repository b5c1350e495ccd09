"""The built-in corruptions against their references, on real photographs.

At 224 px, ImageNet-C's ladders against the `imagecorruptions` package (a faithful copy of
ImageNet-C's code); at 32 px, the `auto` ladder against CIFAR-10-C: the parameters of Hendrycks'
make_cifar_c.py, applied with the same library calls (through imagecorruptions' helpers where
it has them). A deterministic corruption must match to >= 40 dB PSNR; a random one must change
the image as much on average: mean absolute change within 10% of the reference's.

elastic_transform is in neither: imagecorruptions replaced ImageNet-C's elastic transform (a
random affine warp, then a displacement field) by a milder one of its own. qa follows the
original, and was measured against ImageNet-C's and CIFAR-10-C's own code (see qa.perturb).
"""

import functools
import io
import sys
import types

import cv2
import numpy as np
import pytest
import skimage
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from qa.perturb import apply

DETERMINISTIC = (
    "defocus_blur",
    "zoom_blur",
    "gaussian_blur",
    "brightness",
    "contrast",
    "saturate",
    "pixelate",
    "jpeg_compression",
)
RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "motion_blur", "fog")
MIN_PSNR, CHANGE_TOLERANCE = 40.0, 0.10
# Draws per image for the random corruptions at 224 px: a fog's strength varies most from draw
# to draw (how bright its fractal comes out), so it needs more for a mean to within a few %.
DRAWS_224 = {"fog": 16}


@pytest.fixture(scope="module")
def reference():
    """imagecorruptions' corruption functions, shimmed for today's libraries (it dates from 2019).

    - It imports pkg_resources (gone from setuptools 81) for its frost textures only: a stub
      stands in while it is imported.
    - Its plasma fractal (fog) asks for np.float_ (gone in numpy 2): np.float64 stands in.
    - It calls skimage.filters.gaussian with multichannel=True (gone in scikit-image 0.19):
      a wrapper passes channel_axis=-1 instead.
    """
    stub = types.ModuleType("pkg_resources")
    stub.resource_filename = lambda package, path: path
    with pytest.MonkeyPatch.context() as patch:
        if "pkg_resources" not in sys.modules:
            patch.setitem(sys.modules, "pkg_resources", stub)
        import imagecorruptions.corruptions as corruptions
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(np, "float_", np.float64, raising=False)

        def gaussian(image, sigma, multichannel=False, **kwargs):
            channel_axis = -1 if multichannel else None
            return skimage.filters.gaussian(image, sigma=sigma, channel_axis=channel_axis, **kwargs)

        patch.setattr(corruptions, "gaussian", gaussian)
        yield corruptions


def photos(size: int, count: int) -> torch.Tensor:
    """`count` crops of scikit-learn's two sample photographs at size x size, on 8-bit levels."""
    from sklearn.datasets import load_sample_images

    crops = []
    for image in load_sample_images().images:
        full = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
        for top, left in [(0, 0), (200, 300), (100, 150), (150, 400)][: (count + 1) // 2]:
            crop = full[:, top : top + 224, left : left + 224]
            crops.append(TF.resize(crop, [size, size], antialias=True))
    return (torch.stack(crops[:count]).clamp(0, 1) * 255).round() / 255


def run_reference(corrupt, images: torch.Tensor, draws: int) -> torch.Tensor:
    """`corrupt(uint8 HWC array) -> array in [0, 255]` on every image, `draws` times over."""
    np.random.seed(0)
    pixels = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()
    out = [np.asarray(corrupt(p), dtype=np.float64) for _ in range(draws) for p in pixels]
    return torch.from_numpy(np.clip(np.stack(out) / 255, 0, 1)).permute(0, 3, 1, 2).float()


def compare(name: str, images: torch.Tensor, corrupt, severity: int, draws: int) -> float:
    """PSNR (dB) to the reference for a deterministic corruption; for a random one, the ratio of
    qa's mean absolute change to the reference's, over `draws` draws per image."""
    expected = run_reference(corrupt, images, draws)
    batch = images.repeat(draws, 1, 1, 1)
    ours = apply(name, batch, severity, keys=range(len(batch)))
    if name in RANDOM:
        return float((ours - batch).abs().mean() / (expected - batch).abs().mean())
    mse = (ours - expected).square().flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


def check(name: str, value: float, severity: int) -> None:
    """Assert `value` (from `compare`) is within the bounds of the module docstring."""
    if name in RANDOM:
        assert abs(value - 1) <= CHANGE_TOLERANCE, f"{name} s{severity}: mean change x{value:.3f}"
    else:
        assert value >= MIN_PSNR, f"{name} s{severity}: {value:.1f} dB to the reference"


@pytest.mark.slow
@pytest.mark.parametrize("name", DETERMINISTIC + RANDOM)
def test_imagenet_c_ladders_match_imagecorruptions_at_224(name, reference):
    images = photos(224, 4)
    for severity in range(1, 6):
        corrupt = functools.partial(_on_pil, getattr(reference, name), severity)
        draws = DRAWS_224.get(name, 4) if name in RANDOM else 1
        check(name, compare(name, images, corrupt, severity, draws), severity)


def _on_pil(corruption, severity: int, pixels: np.ndarray):
    return corruption(Image.fromarray(pixels), severity)


def _on_unit(corruption, parameter, pixels: np.ndarray):
    return corruption(pixels / 255, parameter) * 255


def _hsv(x, channel: int, change):
    hsv = skimage.color.rgb2hsv(x)
    hsv[..., channel] = np.clip(change(hsv[..., channel]), 0, 1)
    return skimage.color.hsv2rgb(hsv)


def _pil(x, change):
    return np.asarray(change(Image.fromarray(np.uint8(np.round(x * 255))))) / 255


def _zoom(ref, x, factor):
    return ref.clipped_zoom(x, factor)[:32, :32]  # the top-left crop is the centre one at 32 px


def _box(image: Image.Image, side: int) -> Image.Image:
    return image.resize((side, side), Image.Resampling.BOX)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer)


def cifar10_c(ref) -> dict:
    """name: (make_cifar_c.py's parameter per severity, the corruption of x (HWC in [0, 1]) at one)."""
    return {
        "gaussian_noise": (
            (0.04, 0.06, 0.08, 0.09, 0.10),
            lambda x, c: x + np.random.normal(size=x.shape, scale=c),
        ),
        "shot_noise": ((500, 250, 100, 75, 50), lambda x, c: np.random.poisson(x * c) / c),
        "impulse_noise": (
            (0.01, 0.02, 0.03, 0.05, 0.07),
            lambda x, c: skimage.util.random_noise(
                x, mode="s&p", amount=c, rng=np.random.randint(2**31)
            ),
        ),
        "defocus_blur": (
            ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
            lambda x, c: cv2.filter2D(x, -1, ref.disk(*c).astype(np.float64)),
        ),
        # imagecorruptions' port of the ImageMagick motion blur that CIFAR-10-C calls through Wand.
        "motion_blur": (
            ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
            lambda x, c: ref._motion_blur(x, *c, np.random.uniform(-45, 45)),
        ),
        "zoom_blur": (
            (1.06, 1.11, 1.16, 1.21, 1.26),
            lambda x, c: np.mean([x] + [_zoom(ref, x, z) for z in np.arange(1, c, 0.01)], 0),
        ),
        "gaussian_blur": (
            (0.4, 0.6, 0.7, 0.8, 1),
            lambda x, c: skimage.filters.gaussian(x, sigma=c, channel_axis=-1),
        ),
        "fog": (
            ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
            lambda x, c: (
                (x + c[0] * ref.plasma_fractal(32, c[1])[..., None]) * x.max() / (x.max() + c[0])
            ),
        ),
        "brightness": ((0.05, 0.1, 0.15, 0.2, 0.3), lambda x, c: _hsv(x, 2, lambda v: v + c)),
        "contrast": (
            (0.75, 0.5, 0.4, 0.3, 0.15),
            lambda x, c: (x - x.mean((0, 1))) * c + x.mean((0, 1)),
        ),
        "saturate": (
            ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
            lambda x, c: _hsv(x, 1, lambda v: v * c[0] + c[1]),
        ),
        "pixelate": (
            (0.95, 0.9, 0.85, 0.75, 0.65),
            lambda x, c: _pil(x, lambda i: _box(_box(i, int(32 * c)), 32)),
        ),
        "jpeg_compression": ((80, 65, 58, 50, 40), lambda x, c: _pil(x, lambda i: _jpeg(i, c))),
    }


@pytest.mark.parametrize("name", DETERMINISTIC + RANDOM)
def test_auto_ladder_matches_cifar10_c_at_32(name, reference):
    images = photos(32, 8)
    parameters, corrupt = cifar10_c(reference)[name]
    for severity, c in enumerate(parameters, 1):
        at_c = functools.partial(_on_unit, corrupt, c)
        check(name, compare(name, images, at_c, severity, 16 if name in RANDOM else 1), severity)
