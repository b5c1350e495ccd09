"""Digital families of ImageNet-C and CIFAR-10-C: pixelate, JPEG compression, elastic transform.

Pixelation factors are fractions of the image and JPEG qualities are absolute, so neither is
scaled (JPEG's 8x8 blocks are fixed in pixels, so its artefacts loom larger on small images);
the elastic transform's pixel-valued parameters are scaled to the image size.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from qa.perturb import SPATIAL_MIN_SIZE, register
from qa.perturb.common import SampleRandom, gaussian_smooth, pixel_grid, sample_at, size_scale

# torch and PIL are imported inside the functions: `import qa.perturb` imports this
# module to register its perturbations, and the torch-free commands (`qa validate`) read that
# registry.
if TYPE_CHECKING:
    import torch

PIXELATE = {  # side of the coarse grid, as a fraction of the image
    "imagenet_c": (0.6, 0.5, 0.4, 0.3, 0.25),
    "cifar10_c": (0.95, 0.9, 0.85, 0.75, 0.65),
}
JPEG_QUALITY = {"imagenet_c": (25, 18, 15, 10, 7), "cifar10_c": (80, 65, 58, 50, 40)}
# (displacement gain, displacement smoothness sigma, affine jitter), pixels at the ladder's
# size. ImageNet-C wrote 244 for 224 in these; its values are kept, as its authors judged
# them harmless.
ELASTIC = {
    "imagenet_c": (
        (244 * 2, 244 * 0.7, 244 * 0.1),
        (244 * 2, 244 * 0.08, 244 * 0.2),
        (244 * 0.05, 244 * 0.01, 244 * 0.02),
        (244 * 0.07, 244 * 0.01, 244 * 0.02),
        (244 * 0.12, 244 * 0.01, 244 * 0.02),
    ),
    "cifar10_c": (
        (32 * 0, 32 * 0, 32 * 0.08),
        (32 * 0.05, 32 * 0.2, 32 * 0.07),
        (32 * 0.08, 32 * 0.06, 32 * 0.06),
        (32 * 0.1, 32 * 0.04, 32 * 0.05),
        (32 * 0.1, 32 * 0.03, 32 * 0.03),
    ),
}


def _box_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """(n_out, n_in) weights of PIL's BOX resampling along one axis, which the references use.

    Output pixel i averages the input pixels whose centres fall in (i * s, (i + 1) * s],
    s = n_in / n_out, with equal weights (not by their overlap); upscaling, that is the
    nearest pixel. torchvision has no box filter for tensors (its antialiased bilinear is a
    triangle filter, which blurs the blocks).
    """
    import torch

    scale = n_in / n_out
    support = 0.5 * max(scale, 1.0)
    centre = (torch.arange(n_out, dtype=torch.float64) + 0.5) * scale
    pixel = torch.arange(n_in, dtype=torch.float64)
    offset = (pixel[None] + 0.5 - centre[:, None]) / max(scale, 1.0)
    window = (pixel[None] >= (centre - support + 0.5).floor()[:, None]) & (
        pixel[None] < (centre + support + 0.5).floor()[:, None]
    )
    weights = ((offset > -0.5) & (offset <= 0.5) & window).double()
    return (weights / weights.sum(1, keepdim=True)).to(device)


def _box_resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize with PIL's BOX filter, separably: rows, then columns."""
    rows = _box_matrix(images.shape[-2], height, images.device).to(images.dtype)
    columns = _box_matrix(images.shape[-1], width, images.device).to(images.dtype)
    return rows @ images @ columns.T


@register("pixelate", "digital", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def pixelate(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Box-filter down to a coarse grid, then box-filter back up (big square pixels), as the
    references do with PIL."""
    h, w = images.shape[-2:]
    factor = PIXELATE[ladder][severity - 1]
    small = _box_resize(images, max(1, int(h * factor)), max(1, int(w * factor)))
    return _box_resize(small, h, w).clamp(0, 1)


@register("jpeg_compression", "digital", imagenet_c=True, min_size=8, ladders=True)  # a JPEG block
def jpeg_compression(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """Encode and decode as JPEG at a low quality (blocking and ringing), on 8-bit values.

    With PIL, as ImageNet-C: torchvision's jpeg rests on its image codecs, deprecated since
    0.29 in favour of TorchCodec, and a GPU codec (nvjpeg) would not match PIL's libjpeg bit
    for bit. So the batch goes to the CPU as 8-bit pixels, each image is encoded and decoded
    there, and the result comes back to the images' device and dtype: the same values on
    every device (no tolerance to state), at the cost of one copy each way per batch.
    """
    import torch
    from PIL import Image

    quality = JPEG_QUALITY[ladder][severity - 1]
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = np.empty_like(pixels)
    for i, array in enumerate(pixels):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
        with Image.open(buffer) as image:
            decoded[i] = np.asarray(image.convert("RGB"))
    out = torch.from_numpy(decoded).permute(0, 3, 1, 2).to(images.device, images.dtype)
    return (out / 255).clamp(0, 1)


def _affine_jitter(images: torch.Tensor, jitter: float, rng: SampleRandom) -> torch.Tensor:
    """(B, 2, 3) matrices mapping output pixels to input pixels: ImageNet-C's random affine.

    Three points around the centre are moved by up to `jitter` pixels and the affine map
    between the point sets solved for, as cv2.getAffineTransform; warpAffine samples the
    input at the inverse map, which is the map from moved points back to the originals.
    """
    import torch

    h, w = images.shape[-2:]
    centre = torch.tensor([w // 2, h // 2], dtype=torch.float64, device=images.device)
    d = min(h, w) // 3
    offsets = torch.tensor([[d, d], [d, -d], [-d, -d]], dtype=torch.float64, device=images.device)
    source = centre + offsets
    moved = source + rng.uniform(-jitter, jitter, 3, 2).to(torch.float64)
    ones = torch.ones(len(images), 3, 1, dtype=torch.float64, device=images.device)
    # Solve [moved 1] @ M^T = source for the inverse map, one 3x3 system per sample.
    inverse = torch.linalg.solve(torch.cat([moved, ones], -1), source.expand_as(moved))
    return inverse.transpose(1, 2)


@register("elastic_transform", "digital", imagenet_c=True, min_size=SPATIAL_MIN_SIZE, ladders=True)
def elastic_transform(
    images: torch.Tensor, severity: int, rng: SampleRandom, *, ladder: str
) -> torch.Tensor:
    """A random affine warp followed by a smooth random displacement field, per image.

    Written by hand because torchvision's elastic applies one displacement to the whole batch;
    here each image has its own, and both warps are composed into a single bilinear sampling
    with mirrored borders.
    """
    import torch

    scale = size_scale(images, ladder)
    gain, sigma, jitter = (v * scale for v in ELASTIC[ladder][severity - 1])
    inverse = _affine_jitter(images, jitter, rng).to(images.dtype)
    noise = rng.uniform(-1, 1, 2, *images.shape[-2:]).to(images.dtype)
    displacement = (gaussian_smooth(noise, sigma) * gain).permute(0, 2, 3, 1)  # (B, H, W, 2)
    coords = pixel_grid(images)[None] + displacement
    warped = torch.einsum("bij,bhwj->bhwi", inverse[..., :2], coords) + inverse[:, None, None, :, 2]
    return sample_at(images, warped, "reflection").clamp(0, 1)
