"""Spatter, ImageNet-C's held-out weather corruption: water drops (severities 1-3) or mud
(4-5) on the lens, with ImageNet-C's and CIFAR-10-C's parameters.

Both start from the references' liquid layer: Gaussian noise, smoothed, values under a cut-off
dropped. Mud darkens the image to brown where the smoothed liquid covers it. Water adds pale
turquoise shaded by an embossed distance-to-the-drop-edges map, which the references make with
OpenCV (Canny edges, a distance transform, histogram equalisation, an emboss filter): written
here as batched torch ops on the images' device, OpenCV's rules followed step by step (the
tests find the same edges, distances and equalisation as OpenCV's). The layer is made at the ladder's size, where the references' parameters
apply as they are, and resized to the image (see qa.perturb.weather).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qa.perturb import SPATIAL_MIN_SIZE, register
from qa.perturb.blur import gaussian_filter
from qa.perturb.common import SampleRandom, filter2d, reference_shape, resize_to

# torch is imported inside the functions: `import qa.perturb` imports this module to register
# its perturbations, and the torch-free commands (`qa validate`) read that registry.
if TYPE_CHECKING:
    import torch

# (liquid mean, liquid spread, liquid sigma, cut-off, water gain or mud sigma, mud?), pixels
# at the ladder's size
SPATTER = {
    "imagenet_c": (
        (0.65, 0.3, 4, 0.69, 0.6, False),
        (0.65, 0.3, 3, 0.68, 0.6, False),
        (0.65, 0.3, 2, 0.68, 0.5, False),
        (0.65, 0.3, 1, 0.65, 1.5, True),
        (0.67, 0.4, 1, 0.65, 1.5, True),
    ),
    "cifar10_c": (
        (0.62, 0.1, 0.7, 0.7, 0.5, False),
        (0.65, 0.1, 0.8, 0.7, 0.5, False),
        (0.65, 0.3, 1, 0.69, 0.5, False),
        (0.65, 0.1, 0.7, 0.69, 0.6, True),
        (0.65, 0.1, 0.5, 0.68, 0.6, True),
    ),
}
WATER = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
MUD = (63 / 255, 42 / 255, 20 / 255)  # brown
MUD_COVER = 0.8  # smoothed mud under this is dropped
CANNY_LOW, CANNY_HIGH = 50, 150
EDGE_REACH = 20  # distances to the nearest edge are cut here, in pixels
EMBOSS = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))
CHAMFER_STEPS = ((0, 1, 1.0), (1, 1, 1.4), (1, 2, 2.1969))  # OpenCV's 5x5 mask for DIST_L2
# OpenCV's Canny sorts gradient directions with tan(22.5 degrees) in 15-bit fixed point
TAN22_FIXED, FIXED_ONE = 13573, 1 << 15


def _canny(levels: torch.Tensor) -> torch.Tensor:
    """OpenCV's Canny(levels, 50, 150) on (B, 1, h, w) 8-bit levels (float64): a bool edge map.

    3x3 Sobel gradients (edges repeated), L1 magnitude, non-maximum suppression across the
    gradient's direction (one of four), then hysteresis: pixels above the low threshold that
    connect (8 ways) to one above the high threshold.
    """
    import torch
    import torch.nn.functional as F

    sobel = levels.new_tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    gx = filter2d(levels, sobel, "replicate")
    gy = filter2d(levels, sobel.T, "replicate")
    mag = gx.abs() + gy.abs()
    h, w = mag.shape[-2:]
    padded = F.pad(mag, [1, 1, 1, 1])  # OpenCV's magnitude border is 0

    def at(dy: int, dx: int) -> torch.Tensor:
        return padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    ax, ay = gx.abs(), gy.abs()
    flat = ay * FIXED_ONE < ax * TAN22_FIXED
    steep = ay * FIXED_ONE > ax * (TAN22_FIXED + 2 * FIXED_ONE)
    same_sign = (gx * gy) >= 0
    diagonal = torch.where(
        same_sign,
        (mag > at(-1, -1)) & (mag > at(1, 1)),
        (mag > at(-1, 1)) & (mag > at(1, -1)),
    )
    peak = torch.where(
        flat,
        (mag > at(0, -1)) & (mag >= at(0, 1)),
        torch.where(steep, (mag > at(-1, 0)) & (mag >= at(1, 0)), diagonal),
    )
    weak = peak & (mag > CANNY_LOW)
    edges = weak & (mag > CANNY_HIGH)
    while True:
        grown = weak & (F.max_pool2d(edges.double(), 3, 1, 1) > 0)
        if torch.equal(grown, edges):
            return edges
        edges = grown


def _edge_distance(edges: torch.Tensor, reach: int) -> torch.Tensor:
    """OpenCV's distanceTransform(DIST_L2, 5) to the nearest edge pixel, cut at `reach`.

    The chamfer distance of OpenCV's 5x5 mask (steps of 1 across, 1.4 diagonally, 2.1969 a
    knight's move), by relaxation: every step costs at least 1, so `reach` rounds of taking
    the cheapest step from a neighbour settle every distance up to `reach`.
    """
    import torch
    import torch.nn.functional as F

    far = float(reach + 1)
    distance = torch.where(edges, 0.0, far).to(torch.float64)
    h, w = distance.shape[-2:]
    steps = {
        (sy * dy, sx * dx, cost)
        for dy, dx, cost in CHAMFER_STEPS
        for sy in (1, -1)
        for sx in (1, -1)
    }
    steps |= {(dx, dy, cost) for dy, dx, cost in steps}
    for _ in range(reach):
        padded = F.pad(distance, [2, 2, 2, 2], value=far)
        moved = [
            padded[..., 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] + cost for dy, dx, cost in steps
        ]
        distance = torch.stack([distance, *moved]).amin(0)
    return distance.clamp(max=reach)


def _equalize(levels: torch.Tensor) -> torch.Tensor:
    """OpenCV's equalizeHist of each image's 8-bit levels (B, 1, h, w), float."""
    import torch

    b = len(levels)
    index = levels.flatten(1).long()
    hist = torch.zeros(b, 256, device=levels.device).scatter_add_(
        1, index, torch.ones_like(index, dtype=torch.float32)
    )
    first = (hist > 0).float().argmax(1, keepdim=True)
    low = hist.gather(1, first)
    total = index.shape[1]
    scale = 255 / (total - low).clamp_min(1)
    lut = torch.round((hist.cumsum(1) - low) * scale).clamp(0, 255)
    lut = torch.where(low == total, first.float(), lut)  # one level only: OpenCV keeps it
    return lut.gather(1, index).reshape(levels.shape).to(levels.dtype)


def _water(liquid: torch.Tensor, gain: float) -> torch.Tensor:
    """The water layer's strength, (B, 1, h, w) in [0, gain]: the liquid's 8-bit levels times
    an embossed, equalised map of the distance to the drops' edges, normalised per image."""
    import torch

    box = torch.ones(3, 3, dtype=liquid.dtype)  # sums, divided by 9 after, as OpenCV's blur
    # 8 bits, as the references' astype, which wraps values above 1 around: these saturate
    levels = torch.floor(liquid * 255).clamp(0, 255)
    reach = EDGE_REACH
    distance = _edge_distance(_canny(levels), reach)
    distance = _equalize(torch.floor(filter2d(distance, box) / 9))
    distance = filter2d(distance, torch.tensor(EMBOSS, dtype=liquid.dtype)).round().clamp(0, 255)
    shade = levels * torch.round(filter2d(distance, box) / 9)
    return gain * shade / shade.amax((1, 2, 3), keepdim=True).clamp_min(1e-12)


@register("spatter", "weather", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def spatter(images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str) -> torch.Tensor:
    """Water drops (severities 1-3) or mud (4-5) splashed on the lens, as the references."""
    import torch

    mean, spread, sigma, cut, strength, mud = SPATTER[ladder][severity - 1]
    h, w = reference_shape(images, ladder)
    noise = mean + spread * rng.randn(1, h, w).to(torch.float64)
    liquid = gaussian_filter(noise, sigma)
    liquid = torch.where(liquid < cut, 0, liquid)
    if mud:
        cover = gaussian_filter((liquid > cut).to(torch.float64), strength)
        cover = resize_to(torch.where(cover < MUD_COVER, 0, cover).to(images), images)
        return (images * (1 - cover) + images.new_tensor(MUD)[:, None, None] * cover).clamp(0, 1)
    shade = resize_to(_water(liquid, strength).to(images), images)
    return (images + shade * images.new_tensor(WATER)[:, None, None]).clamp(0, 1)
