"""Perturbations: the contract (shape, dtype, range), per-sample determinism, severity ladders
and how one is chosen, the registry and its messages. Real photographs (scikit-learn's samples)
at 64x64. tests/test_perturb_reference.py compares the corruptions with ImageNet-C and CIFAR-10-C."""

import io
import itertools

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

import qa.perturb
from qa.distributed import Group
from qa.errors import InputError
from qa.evidence import View
from qa.perturb import (
    PERTURBATIONS,
    apply,
    perturb_view,
    register_perturbation,
    resolve_ladder,
    sample_key,
)

BUILTIN = sorted(PERTURBATIONS)
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "motion_blur", "fog"}
RANDOM |= {"speckle_noise", "glass_blur", "snow", "frost", "spatter"}
RANDOM |= {"elastic_transform", "rotate", "translate"}
# Reference ladders that are not ordered by pixel distance, kept as the benchmarks have them:
NOT_MONOTONE = {
    "imagenet_c": {
        "saturate": "severities 1-2 fade colour, 3-5 boost it (x2 at 3 is mild)",
        "elastic_transform": "severities 1-2 are large affine warps, 3-5 small local ones",
        "fog": "severities 3 and 4 share the haze strength and differ only in roughness",
        "frost": "severities 3 and 4 share the ice's weight; 4 only dims the image more",
    },
    "cifar10_c": {
        "saturate": "severities 1-2 fade colour, 3-5 boost it (x1.5 at 3 is mild)",
        "motion_blur": "severities 3 and 4 share sigma 2: the longer radius of 4 adds no weight",
        "elastic_transform": "the affine jitter shrinks from severity 1 to 5, the local warp grows",
        "frost": "severities 3 and 4 share the ice's weight; 4 only dims the image more",
        "spatter": "severities 1-3 add water drops, 4-5 mud: a different change",
        "glass_blur": "its blur hides the shuffle: severity 1 barely blurs (sigma 0.05)",
    },
}
# Severity 5 must change the image to below this PSNR; CIFAR-10-C's ladders are milder (its
# pixelate keeps 65% of the resolution at severity 5).
SEVERITY_5_MAX_PSNR = {"imagenet_c": 30, "cifar10_c": 32}
# A ladder not ordered by pixel distance must be that strong from this severity on: spatter's
# first water drops cover a few percent of the image, its mud (4-5) much more.
STRONG_FROM = {"spatter": 4}


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Eight 64x64 crops of scikit-learn's two sample photographs, float in [0, 1]."""
    from sklearn.datasets import load_sample_images

    crops = []
    for image in load_sample_images().images:
        full = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
        for top, left in [(0, 0), (100, 150), (200, 300), (150, 500)]:
            crop = full[:, top : top + 220, left : left + 220]
            crops.append(TF.resize(crop, [64, 64], antialias=True))
    return torch.stack(crops).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the peak signal-to-noise ratio in dB (peak 1)."""
    mse = (a - b).square().flatten(1).mean(1).clamp_min(1e-12)
    return float((10 * torch.log10(1 / mse)).mean())


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("size", [(32, 32), (48, 64)])
@pytest.mark.parametrize("ladder", ["imagenet_c", "cifar10_c"])
def test_keeps_shape_dtype_and_range(name, size, ladder, photos):
    images = TF.resize(photos[:3], list(size), antialias=True).clamp(0, 1)
    for severity in (1, 5):
        out = apply(name, images, severity, keys=[1, 2, 3], ladder=ladder)
        assert out.shape == images.shape and out.dtype == images.dtype
        assert out.min() >= 0 and out.max() <= 1
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", BUILTIN)
def test_same_key_same_image_whatever_the_batch_or_the_shard(name, photos):
    images, keys = photos[:4], [sample_key(f"img{i}.png") for i in range(4)]
    batched = apply(name, images, 3, keys)
    one_by_one = torch.cat([apply(name, images[i : i + 1], 3, keys[i : i + 1]) for i in range(4)])
    order = [2, 0, 3, 1]
    shuffled = apply(name, images[order], 3, torch.tensor([keys[i] for i in order]))
    torch.testing.assert_close(one_by_one, batched, atol=1e-5, rtol=0)
    torch.testing.assert_close(shuffled, batched[order], atol=1e-5, rtol=0)
    torch.testing.assert_close(apply(name, images, 3, keys), batched, atol=0, rtol=0)
    for world in (2, 3):  # the contiguous shards of a torchrun run (qa.distributed)
        shards = [Group(rank, world).shard(4) for rank in range(world)]
        sharded = torch.cat(
            [apply(name, images[r.start : r.stop], 3, keys[r.start : r.stop]) for r in shards]
        )
        torch.testing.assert_close(sharded, batched, atol=1e-5, rtol=0)


def test_the_engine_hook_keys_samples_by_id(photos):
    ids = [f"test/{i}/digit-{i:04d}.png" for i in range(4)]
    out = perturb_view(photos[:4], View(perturbation="fog", severity=2), ids)
    torch.testing.assert_close(out, apply("fog", photos[:4], 2, [sample_key(i) for i in ids]))


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_the_key_and_the_seed_decide_the_randomness(name, photos):
    images = photos[:1].expand(8, -1, -1, -1)
    out = apply(name, images, 3, keys=range(8))
    assert len({round(float(o.sum()), 3) for o in out}) > 1, "every key gave the same draw"
    reseeded = apply(name, images, 3, keys=range(8), seed=1)
    assert (reseeded - out).abs().max() > 1e-3, "the seed changed nothing"


@pytest.mark.parametrize("ladder", ["imagenet_c", "cifar10_c"])
@pytest.mark.parametrize("name", BUILTIN)
def test_degrades_with_severity(name, ladder, photos):
    keys = list(range(len(photos)))
    scores = [psnr(apply(name, photos, s, keys, ladder=ladder), photos) for s in range(1, 6)]
    if not PERTURBATIONS[name].graded:
        assert len(set(scores)) == 1 and scores[0] < 30, scores
    elif name in NOT_MONOTONE[ladder]:
        assert max(scores[STRONG_FROM.get(name, 1) - 1 :]) < SEVERITY_5_MAX_PSNR[ladder], scores
        assert len(set(np.round(scores, 3))) == 5, scores
    else:
        assert all(a > b for a, b in itertools.pairwise(scores)), f"PSNR by severity: {scores}"
        assert scores[-1] < SEVERITY_5_MAX_PSNR[ladder], f"severity 5 is too mild: {scores}"


def test_too_small_image_names_the_family_and_the_size():
    with pytest.raises(InputError, match="zoom_blur needs images of at least 16x16, found 8x8"):
        apply("zoom_blur", torch.rand(2, 3, 8, 8), 1, [0, 1])
    assert apply("gaussian_noise", torch.rand(2, 3, 8, 8), 1, [0, 1]).shape == (2, 3, 8, 8)


def test_bad_calls_are_refused(photos):
    with pytest.raises(ValueError, match="known perturbations: brightness, contrast"):
        apply("gausian_noise", photos, 1, range(8))
    with pytest.raises(ValueError, match="severity from 1 to 5, but got 6"):
        apply("gaussian_noise", photos, 6, range(8))
    with pytest.raises(ValueError, match="one key per image"):
        apply("gaussian_noise", photos, 1, [1])


def test_user_registered_perturbation_is_usable_by_name(monkeypatch, photos):
    monkeypatch.setattr(qa.perturb, "PERTURBATIONS", dict(PERTURBATIONS))

    def darken(images, severity, rng):
        return images * (1 - severity / 10)

    register_perturbation("darken", darken, "digital")
    assert "darken" in qa.perturb.known_names()
    torch.testing.assert_close(apply("darken", photos, 5, range(8)), photos * 0.5)
    with pytest.raises(ValueError, match="registered twice"):
        register_perturbation("darken", darken, "digital")
    with pytest.raises(ValueError, match="group"):
        register_perturbation("other", darken, "weather-ish")


def test_a_registered_function_that_breaks_the_contract_is_caught(monkeypatch, photos):
    monkeypatch.setattr(qa.perturb, "PERTURBATIONS", dict(PERTURBATIONS))
    register_perturbation("grey", lambda x, s, rng: x.mean(1, keepdim=True), "digital")
    with pytest.raises(ValueError, match="perturbation grey returned"):
        apply("grey", photos, 1, range(8))


def test_sample_keys_are_stable_and_distinct():
    assert sample_key("a/b.png") == sample_key("a/b.png")
    assert len({sample_key(f"{i}.png") for i in range(1000)}) == 1000
    assert 0 <= sample_key("x") < 2**63


@pytest.mark.parametrize(
    ("size", "ladder"),
    [
        ((32, 32), "cifar10_c"),
        ((84, 120), "cifar10_c"),
        ((85, 85), "imagenet_c"),
        ((224, 160), "imagenet_c"),
    ],
)
def test_auto_takes_cifar10_c_ladders_up_to_84_px_and_imagenet_c_above(size, ladder, photos):
    images = TF.resize(photos[:2], list(size), antialias=True).clamp(0, 1)
    assert resolve_ladder("auto", *size) == ladder
    other = {"cifar10_c": "imagenet_c", "imagenet_c": "cifar10_c"}[ladder]
    for name in ("contrast", "motion_blur"):
        auto = apply(name, images, 1, [1, 2])
        torch.testing.assert_close(
            auto, apply(name, images, 1, [1, 2], ladder=ladder), atol=0, rtol=0
        )
        assert (auto - apply(name, images, 1, [1, 2], ladder=other)).abs().max() > 0.05


def test_at_32_px_the_default_ladder_is_cifar10_c_strength(photos):
    # CIFAR-10-C's own parameters at its own size: ImageNet-C's, scaled down, blur motion by
    # a fraction of a pixel at severity 1 and pull contrast far harder.
    images = TF.resize(photos, [32, 32], antialias=True).clamp(0, 1)
    keys = range(len(images))
    streak = (apply("motion_blur", images, 1, keys) - images).abs().mean()
    scaled = (apply("motion_blur", images, 1, keys, ladder="imagenet_c") - images).abs().mean()
    assert streak > 4 * scaled
    means = images.mean((2, 3), keepdim=True)
    expected = (images - means) * 0.75 + means  # CIFAR-10-C's contrast, severity 1
    torch.testing.assert_close(apply("contrast", images, 1, keys), expected.clamp(0, 1))


def test_contrast_keeps_each_channels_mean_so_a_colour_cast_stays(photos):
    warm = photos * torch.tensor([1.0, 0.7, 0.4])[:, None, None]
    for ladder in ("imagenet_c", "cifar10_c"):
        out = apply("contrast", warm, 5, range(8), ladder=ladder)
        torch.testing.assert_close(out.mean((2, 3)), warm.mean((2, 3)), atol=1e-5, rtol=0)
        spread = (out - out.mean((2, 3), keepdim=True)).abs().mean((2, 3))
        assert (spread < (warm - warm.mean((2, 3), keepdim=True)).abs().mean((2, 3))).all()


def test_pixelate_makes_each_block_the_plain_mean_of_its_pixels(photos):
    # Severity 5 of ImageNet-C at 64 px: a 16x16 grid of 4x4 blocks, each the box mean.
    out = apply("pixelate", photos, 5, range(8), ladder="imagenet_c")
    blocks = (
        torch.nn.functional.avg_pool2d(photos, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
    )
    torch.testing.assert_close(out, blocks, atol=1e-6, rtol=0)


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="this machine has no CUDA"),
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ladder", ["imagenet_c", "cifar10_c"])
def test_jpeg_is_pils_codec_image_by_image_on_every_device(photos, device, ladder):
    """JPEG round-trips through PIL on the CPU: on any device it equals encoding each image
    alone with PIL at the ladder's quality, bit for bit, and comes back where it was."""
    from PIL import Image

    from qa.perturb.digital import JPEG_QUALITY

    batch = photos.to(device)
    out = apply("jpeg_compression", batch, 4, range(8), ladder=ladder)
    assert out.device == batch.device and out.dtype == batch.dtype
    expected = []
    for image in photos:
        pixels = np.rint(image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY[ladder][3])
        expected.append(np.asarray(Image.open(buffer).convert("RGB")))
    reference = torch.from_numpy(np.stack(expected)).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(out.cpu(), reference)


def test_a_bad_ladder_is_refused_for_every_perturbation(photos):
    for name in ("contrast", "hflip"):
        with pytest.raises(
            ValueError, match="ladder in auto, imagenet_c, cifar10_c, but got 'big'"
        ):
            apply(name, photos, 1, range(8), ladder="big")


@pytest.mark.slow
def test_the_suites_ladder_reaches_the_perturbation_and_the_cache_key(tmp_path, monkeypatch):
    from helpers import save_tiny, write_data, write_suite

    import qa.application
    from qa.application import RunOptions, run_suite

    data, ckpt = write_data(tmp_path / "data", per_class=1), save_tiny(tmp_path / "c.pt")
    seen = []
    original = qa.perturb.perturb_view

    def spy(*args, **kwargs):
        seen.append(kwargs["ladder"])
        return original(*args, **kwargs)

    monkeypatch.setattr(qa.application, "perturb_view", spy)
    monkeypatch.setattr(qa.application, "build_gallery", lambda *args: {})  # the engine's calls
    check = "- {kind: corruption_accuracy, perturbations: [contrast], severities: [1], min: 0}\n"
    ladders = []
    for ladder in ("imagenet_c", "cifar10_c", "imagenet_c"):
        head = f"defaults: {{corruption_ladder: {ladder}}}\n"
        suite = write_suite(tmp_path / "suite.yaml", data, check, head)
        run_suite(suite, ckpt, RunOptions(out=None, cache_dir=tmp_path / "cache", progress=False))
        ladders.append(sorted(set(seen)))
        seen.clear()
    # The second ladder is computed anew, not read from the first's cache entry; the third
    # run, the first's ladder again, reads its entry.
    assert ladders == [["imagenet_c"], ["cifar10_c"], []]
