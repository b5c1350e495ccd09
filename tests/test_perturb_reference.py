"""The built-in corruptions against their references, on real photographs.

At 224 px, ImageNet-C's ladders against the `imagecorruptions` package (a faithful copy of
ImageNet-C's code); at 32 px, the `auto` ladder against CIFAR-10-C: the parameters of Hendrycks'
make_cifar_c.py, applied with the same library calls (through imagecorruptions' helpers where
it has them). A deterministic corruption must match to >= 40 dB PSNR; a random one must change
the image as much on average: mean absolute change within 10% of the reference's (20% for
spatter, whose draws vary most).

elastic_transform is in neither: imagecorruptions replaced ImageNet-C's elastic transform (a
random affine warp, then a displacement field) by a milder one of its own. qa follows the
original, and was measured against ImageNet-C's and CIFAR-10-C's own code (see qa.perturb).

frost is qa's own procedural ice, not the references' photographs: its mean absolute change
must be within FROST_BAND of theirs (the photographs, which imagecorruptions ships, are read
here only as the reference). glass_blur's reference is a pixel-by-pixel Python loop: at 224 px
it runs on two crops, one draw each.
"""

import functools
import importlib.util
import io
import sys
import types
from pathlib import Path

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
RANDOM = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "spatter",
    "fog",
)
TEXTURE = ("frost",)  # random, and qa's texture is not the reference's
MIN_PSNR, CHANGE_TOLERANCE = 40.0, 0.10
# Spatter's water layer is normalised by its brightest pixel, so its change varies most from
# draw to draw (by 36% at ImageNet-C's severity 1): the band is wider for as few draws as a
# test can afford. Its water is checked equal to OpenCV's on the same drops below.
WIDER_TOLERANCE = {"spatter": 0.20}
FROST_BAND = (0.8, 1.25)
# Draws per image for the random corruptions at 224 px: a fog's strength varies most from draw
# to draw (how bright its fractal comes out), so it needs more for a mean to within a few %;
# frost's reference picks one of five photographs per draw.
DRAWS_224 = {"fog": 16, "frost": 16, "snow": 8, "spatter": 8, "glass_blur": 1}
IMAGES_224 = {"glass_blur": 2}
FROST_DIR = Path(
    importlib.util.find_spec("imagecorruptions").submodule_search_locations[0], "frost"
)
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")


@pytest.fixture(scope="module")
def reference():
    """imagecorruptions' corruption functions, shimmed for today's libraries (it dates from 2019).

    - It imports pkg_resources (gone from setuptools 81) to find its frost photographs: a stub
      that finds them in its package folder stands in while it is imported.
    - Its plasma fractal (fog) asks for np.float_ (gone in numpy 2): np.float64 stands in.
    - It calls skimage.filters.gaussian with multichannel=True (gone in scikit-image 0.19):
      a wrapper passes channel_axis=-1 instead.
    """
    stub = types.ModuleType("pkg_resources")
    stub.resource_filename = lambda package, path: str(FROST_DIR.parent / path)
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
    if name in RANDOM + TEXTURE:
        return float((ours - batch).abs().mean() / (expected - batch).abs().mean())
    mse = (ours - expected).square().flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


def check(name: str, value: float, severity: int) -> None:
    """Assert `value` (from `compare`) is within the bounds of the module docstring."""
    if name in TEXTURE:
        low, high = FROST_BAND
        assert low <= value <= high, f"{name} s{severity}: mean change x{value:.3f}"
    elif name in RANDOM:
        tolerance = WIDER_TOLERANCE.get(name, CHANGE_TOLERANCE)
        assert abs(value - 1) <= tolerance, f"{name} s{severity}: mean change x{value:.3f}"
    else:
        assert value >= MIN_PSNR, f"{name} s{severity}: {value:.1f} dB to the reference"


@pytest.mark.slow
@pytest.mark.parametrize("name", DETERMINISTIC + RANDOM + TEXTURE)
def test_imagenet_c_ladders_match_imagecorruptions_at_224(name, reference):
    images = photos(224, IMAGES_224.get(name, 4))
    for severity in range(1, 6):
        corrupt = functools.partial(_on_pil, getattr(reference, name), severity)
        draws = DRAWS_224.get(name, 4) if name in RANDOM + TEXTURE else 1
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


def _glass(x, sigma: float, hop: int, iterations: int):
    """Blur to 8 bits, swap each pixel (bottom-right first) with one up to `hop` away, blur."""
    levels = np.uint8(skimage.filters.gaussian(x, sigma=sigma, channel_axis=-1) * 255)
    h, w = levels.shape[:2]
    for _ in range(iterations):
        for i in range(h - hop, hop, -1):
            for j in range(w - hop, hop, -1):
                di, dj = np.random.randint(-hop, hop, size=2)
                levels[[i, i + di], [j, j + dj]] = levels[[i + di, i], [j + dj, j]]
    return skimage.filters.gaussian(levels / 255, sigma=sigma, channel_axis=-1)


def _snow(ref, x, c):
    """Streaked flakes over a whitened image, with imagecorruptions' helpers (its motion blur
    stands in for the ImageMagick one CIFAR-10-C calls through Wand, as for motion_blur)."""
    mean, spread, zoom, cut, radius, sigma, keep = c
    layer = np.random.normal(size=x.shape[:2], loc=mean, scale=spread)
    layer = ref.clipped_zoom(layer[..., None], zoom)[:32, :32, 0]
    layer = np.clip(np.where(layer < cut, 0, layer), 0, 1)
    layer = ref._motion_blur(layer, radius, sigma, np.random.uniform(-135, -45))
    layer = np.round(layer * 255)[..., None] / 255
    grey = cv2.cvtColor(np.float32(x), cv2.COLOR_RGB2GRAY)[..., None]
    x = keep * x + (1 - keep) * np.maximum(x, grey * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2)


def _frost(x, c):
    """A random 32 px crop of a frost photograph shrunk 5x, blended in."""
    photo = cv2.imread(str(FROST_DIR / FROST_FILES[np.random.randint(5)]))
    photo = cv2.resize(photo, (0, 0), fx=0.2, fy=0.2)
    top = np.random.randint(0, photo.shape[0] - 32)
    left = np.random.randint(0, photo.shape[1] - 32)
    return c[0] * x + c[1] * photo[top : top + 32, left : left + 32, ::-1] / 255


def _spatter(x, c):
    """Mud, or water shaded by an embossed distance to the drops' edges, with OpenCV."""
    mean, spread, sigma, cut, strength, mud = c
    liquid = np.random.normal(size=x.shape[:2], loc=mean, scale=spread)
    liquid = skimage.filters.gaussian(liquid, sigma=sigma)
    liquid[liquid < cut] = 0
    if mud:
        cover = skimage.filters.gaussian((liquid > cut).astype(np.float32), sigma=strength)
        cover[cover < 0.8] = 0
        return x * (1 - cover[..., None]) + np.array([63, 42, 20]) / 255 * cover[..., None]
    return x + _water_shade(liquid, strength)[..., None] * np.array([175, 238, 238]) / 255


def _water_shade(liquid: np.ndarray, strength: float) -> np.ndarray:
    """The water's strength: the liquid's levels times an embossed, equalised edge distance."""
    levels = (liquid * 255).astype(np.uint8)
    distance = cv2.distanceTransform(255 - cv2.Canny(levels, 50, 150), cv2.DIST_L2, 5)
    distance = cv2.blur(np.minimum(distance, 20), (3, 3)).astype(np.uint8)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    distance = cv2.filter2D(cv2.equalizeHist(distance), cv2.CV_8U, emboss)
    shade = levels * cv2.blur(distance, (3, 3)).astype(np.float32)
    return shade / shade.max() * strength


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
        "speckle_noise": (
            (0.06, 0.1, 0.12, 0.16, 0.2),
            lambda x, c: x + x * np.random.normal(size=x.shape, scale=c),
        ),
        "glass_blur": (
            ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
            lambda x, c: _glass(x, *c),
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
        "snow": (
            (
                (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
                (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
            ),
            functools.partial(_snow, ref),
        ),
        "frost": (((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)), _frost),
        "spatter": (
            (
                (0.62, 0.1, 0.7, 0.7, 0.5, False),
                (0.65, 0.1, 0.8, 0.7, 0.5, False),
                (0.65, 0.3, 1, 0.69, 0.5, False),
                (0.65, 0.1, 0.7, 0.69, 0.6, True),
                (0.65, 0.1, 0.5, 0.68, 0.6, True),
            ),
            _spatter,
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


@pytest.mark.parametrize("name", DETERMINISTIC + RANDOM + TEXTURE)
def test_auto_ladder_matches_cifar10_c_at_32(name, reference):
    images = photos(32, 8)
    parameters, corrupt = cifar10_c(reference)[name]
    for severity, c in enumerate(parameters, 1):
        at_c = functools.partial(_on_unit, corrupt, c)
        draws = 16 if name in RANDOM + TEXTURE else 1
        check(name, compare(name, images, at_c, severity, draws), severity)


def liquid_levels(seed: int, size: int = 64) -> np.ndarray:
    """A spatter liquid layer on 8-bit levels: smoothed noise, values under a cut-off dropped."""
    rng = np.random.default_rng(seed)
    liquid = skimage.filters.gaussian(rng.normal(0.65, 0.3, (size, size)), sigma=2)
    return (np.where(liquid < 0.68, 0, liquid).clip(0, 1) * 255).astype(np.uint8)


def test_spatters_opencv_steps_match_opencv():
    """Canny edges, the distance to them and histogram equalisation, the OpenCV steps of qa's
    water drops, against OpenCV's own."""
    from qa.perturb.spatter import _canny, _edge_distance, _equalize

    levels = np.stack([liquid_levels(seed) for seed in range(4)])
    batch = torch.from_numpy(levels).double()[:, None]
    edges = _canny(batch)[:, 0].numpy()
    for ours, level in zip(edges, levels, strict=True):
        expected = cv2.Canny(level, 50, 150) > 0
        assert expected.sum() > 100
        np.testing.assert_array_equal(ours, expected)
    distance = _edge_distance(torch.from_numpy(edges)[:, None], 20)[:, 0].numpy()
    for ours, edge in zip(distance, edges, strict=True):
        mask = np.where(edge, 0, 255).astype(np.uint8)
        expected = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
        np.testing.assert_allclose(ours, np.minimum(expected, 20), atol=1e-4)
    spread = np.stack([np.uint8(np.minimum(d, 20) * 12) for d in distance])
    equalised = _equalize(torch.from_numpy(spread).double()[:, None])[:, 0].numpy()
    for ours, level in zip(equalised, spread, strict=True):
        np.testing.assert_array_equal(ours, cv2.equalizeHist(level))
    constant = _equalize(torch.full((1, 1, 8, 8), 7.0, dtype=torch.float64))
    np.testing.assert_array_equal(
        constant[0, 0].numpy(), cv2.equalizeHist(np.full((8, 8), 7, np.uint8))
    )


def test_spatters_water_matches_opencvs_on_the_same_liquid():
    from qa.perturb.spatter import _water

    rng = np.random.default_rng(0)
    for sigma in (4, 2, 0.8):
        liquid = skimage.filters.gaussian(rng.normal(0.65, 0.3, (96, 96)), sigma=sigma)
        # Above 1, the references' astype(uint8) wraps around (numpy leaves it undefined);
        # qa saturates. It is rare (1 in 10,000 at sigma 0.8): the comparison leaves it out.
        liquid = np.where(liquid < 0.68, 0, liquid).clip(0, 1)
        ours = _water(torch.from_numpy(liquid)[None, None], 0.6)[0, 0].numpy()
        expected = _water_shade(liquid, 0.6)
        assert expected.mean() > 0.01
        np.testing.assert_allclose(ours, expected, atol=1e-5)
