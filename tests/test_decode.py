"""One decoder for every view of an image: a 16-bit file means what its 8-bit original means.

Real digits written as 8-bit and 16-bit PNGs, and real files in the other modes PIL opens
(palette, alpha, CMYK, 1-bit, float and integer greyscale), through every place an image
becomes pixels: inference, the profile, thumbnails and training.
"""

import base64
import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PREPROCESSING, evidence_of, save_tiny, write_suite
from PIL import Image

from qa.data import Sample, image_problem
from qa.errors import InputError
from qa.evidence import CLEAN
from qa.formats import load_any
from qa.inference import ImageFiles
from qa.preprocess import load_rgb, to_unit_tensor
from qa.profile import profile_file
from qa.suite import load_suite
from qa.thumbnails import thumbnail_uri
from trainer.data import ImageDataset, channel_stats

CLASSES = ["0", "1", "2"]


def _png16(path: Path, pixels: np.ndarray) -> Path:
    """Write uint16 (H, W, 3 or 4) pixels as a 16-bit RGB or RGBA PNG (PIL cannot)."""
    height, width, channels = pixels.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 16, {3: 2, 4: 6}[channels], 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def wide(tiny_digits) -> Path:
    """The tiny val tree again, every digit rewritten as a 16-bit greyscale PNG (values x 257)."""
    val, wide = tiny_digits / "val", tiny_digits / "val16"
    shutil.copytree(val, wide)
    for path in sorted(wide.rglob("*.png")):
        with Image.open(path) as img:
            assert img.mode == "L"
            digit = np.asarray(img).astype(np.uint16) * 257
        Image.fromarray(digit).save(path)
        with Image.open(path) as img:
            assert img.mode == "I;16"
    return wide


def _pairs(tiny_digits, wide) -> list[tuple[Path, Path]]:
    val = tiny_digits / "val"
    return [(val / p.relative_to(wide), p) for p in sorted(wide.rglob("*.png"))]


def test_a_16_bit_digit_decodes_as_its_8_bit_original(tiny_digits, wide):
    for narrow, deep in _pairs(tiny_digits, wide):
        np.testing.assert_allclose(load_rgb(deep), load_rgb(narrow), rtol=0, atol=1e-6)
        inference = ImageFiles([Sample(narrow, 0), Sample(deep, 0)], PREPROCESSING)
        (a, _, ok_a, _), (b, _, ok_b, _) = inference[0], inference[1]
        assert ok_a == ok_b == "" and a.shape == (3, 16, 16) and a.mean() > 0.05
        torch.testing.assert_close(b, a, rtol=0, atol=1 / 255)
        training = ImageDataset([Sample(narrow, 0), Sample(deep, 0)], to_unit_tensor(PREPROCESSING))
        torch.testing.assert_close(training[1][0], training[0][0], rtol=0, atol=1 / 255)
        assert thumbnail_uri(deep) == thumbnail_uri(narrow)


def test_the_profile_sees_a_16_bit_digit_as_its_8_bit_original(tiny_digits, wide):
    for narrow, deep in _pairs(tiny_digits, wide):
        a, b = profile_file(str(narrow)), profile_file(str(deep))
        assert (a["mode"], b["mode"], a["decodes"], b["decodes"]) == ("L", "I;16", True, True)
        assert abs(a["pixel_mean"] - b["pixel_mean"]) <= 1 / 255
        assert abs(a["pixel_std"] - b["pixel_std"]) <= 1 / 255
        assert a["phash"] == b["phash"]


def test_training_statistics_of_16_bit_digits_match(tiny_digits, wide):
    narrow, deep = zip(*_pairs(tiny_digits, wide), strict=True)
    mean_a, std_a = channel_stats([Sample(p, 0) for p in narrow], 16)
    mean_b, std_b = channel_stats([Sample(p, 0) for p in deep], 16)
    np.testing.assert_allclose(mean_b, mean_a, atol=1 / 255)
    np.testing.assert_allclose(std_b, std_a, atol=1 / 255)


def test_a_model_scores_16_bit_digits_as_their_8_bit_originals(tiny_digits, wide, tmp_path):
    model = load_any(save_tiny(tmp_path / "cand.pt", seed=3, class_names=CLASSES))
    logits = []
    for data in (tiny_digits / "val", wide):
        checks = "- {kind: top1_accuracy, min: 0.0}\n"
        suite = load_suite(write_suite(tmp_path / "s.yaml", data, checks))
        ev = evidence_of(suite, model, [CLEAN])
        logits.append(ev.logits())
    np.testing.assert_allclose(logits[1], logits[0], rtol=1e-4, atol=1e-4)


def _digit(tiny_digits) -> np.ndarray:
    with Image.open(sorted((tiny_digits / "val" / "1").iterdir())[0]) as img:
        return np.asarray(img)


def _colour(grey: np.ndarray) -> np.ndarray:
    """A digit in three different channels, so channel order and weights show."""
    return np.stack([grey, 255 - grey, grey // 2], axis=-1).astype(np.uint8)


def test_every_mode_decodes_to_rgb_on_0_1(tiny_digits, tmp_path):
    grey = _digit(tiny_digits)
    rgb = _colour(grey)
    alpha = np.full_like(grey, 7)  # dropped, not composited: the colours stay as stored
    unit = rgb.astype(np.float32) / 255
    grey3 = np.repeat(grey[..., None], 3, axis=2).astype(np.float32) / 255
    cases = {
        "rgba.png": (Image.fromarray(np.dstack([rgb, alpha])), unit),
        "la.png": (Image.fromarray(np.dstack([grey, alpha])), grey3),
        "rgb16.png": (_png16(tmp_path / "rgb16.png", rgb.astype(np.uint16) * 257), unit),
        "rgba16.png": (
            _png16(tmp_path / "rgba16.png", np.dstack([rgb, alpha]).astype(np.uint16) * 257),
            unit,
        ),
        "float.tif": (Image.fromarray(grey.astype(np.float32) / 255), grey3),
        "one.png": (Image.fromarray(grey > 128), np.repeat((grey > 128)[..., None], 3, 2)),
    }
    palette = Image.fromarray(rgb).quantize(16)
    palette.info["transparency"] = 0
    expected = np.asarray(palette.convert("RGB"), dtype=np.float32) / 255
    cases["palette.png"] = (palette, expected)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    cases["cmyk.jpg"] = (cmyk, None)  # JPEG is lossy: compared with PIL's own RGB below
    for name, (image, want) in cases.items():
        path = tmp_path / name
        if isinstance(image, Image.Image):
            image.save(path)
        got = load_rgb(path)
        assert got.dtype == np.float32 and got.shape == (*grey.shape, 3), name
        if want is None:
            with Image.open(path) as img:
                assert img.mode == "CMYK"
                want = np.asarray(img.convert("RGB"), dtype=np.float32) / 255
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=name)


def test_integer_greyscale_of_more_than_8_bits_is_scaled_by_16_bits(tiny_digits, tmp_path):
    grey = _digit(tiny_digits)
    deep = (grey.astype(">u2") * 257).tobytes()
    height, width = grey.shape
    (tmp_path / "deep.pgm").write_bytes(f"P5\n{width} {height}\n65535\n".encode() + deep)
    with Image.open(tmp_path / "deep.pgm") as img:
        assert img.mode == "I"
    expected = np.repeat(grey[..., None], 3, axis=2).astype(np.float32) / 255
    np.testing.assert_allclose(load_rgb(tmp_path / "deep.pgm"), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("pixels", "says"),
    [
        (np.array([[0.0, 1.5]], dtype=np.float32), "mode F pixel values from 0.0 to 1.5"),
        (np.array([[0.0, np.nan]], dtype=np.float32), "mode F pixel values"),
        (np.array([[-1, 70000]], dtype=np.int32), "mode I pixel values from -1 to 70000"),
    ],
)
def test_pixels_outside_their_mode_range_are_refused_not_guessed(tmp_path, pixels, says):
    path = tmp_path / "0" / "odd.tif"
    path.parent.mkdir()
    Image.fromarray(pixels).save(path)
    with pytest.raises(ValueError, match=says):
        load_rgb(path)
    assert says in image_problem(path.read_bytes())  # the trainer refuses it up front
    row = profile_file(str(path))
    assert not row["decodes"] and says in row["error"] and row["phash"] is None
    assert thumbnail_uri(path) is None
    (_, _, problem, _) = ImageFiles([Sample(path, 0)], PREPROCESSING)[0]
    assert says in problem


def test_an_out_of_range_image_stops_a_run_naming_it(tiny_digits, tmp_path):
    odd = tiny_digits / "val" / "2" / "odd.tif"
    Image.fromarray(np.array([[0.0, 2.0]], dtype=np.float32)).save(odd)
    model = load_any(save_tiny(tmp_path / "cand.pt", seed=3, class_names=CLASSES))
    checks = "- {kind: top1_accuracy, min: 0.0}\n"
    suite = load_suite(write_suite(tmp_path / "s.yaml", tiny_digits / "val", checks))
    with pytest.raises(InputError, match=f"^{odd}: cannot decode the image \\(ValueError: mode F"):
        evidence_of(suite, model, [CLEAN], workers=0)


def test_thumbnails_show_the_decoded_pixels(tiny_digits, wide):
    narrow, deep = _pairs(tiny_digits, wide)[0]
    uri = thumbnail_uri(deep)
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as thumb:
        shown = np.asarray(thumb.convert("L"))
    factor = shown.shape[0] // 16
    np.testing.assert_array_equal(shown[::factor, ::factor], _digit_at(narrow))


def _digit_at(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize(("height", "width"), [(32, 32), (32, 45), (45, 32), (17, 23), (90, 64)])
@pytest.mark.parametrize("crop", [28, 32])
def test_the_unit_tensor_equals_torchvisions_composed_pipeline(interpolation, height, width, crop):
    """to_unit_tensor calls torchvision's kernels directly, and skips them for an image already
    at the model's size: the same tensor, bit for bit, as the v2.Compose it replaces, whether
    the image needs resizing, cropping, both or neither."""
    from torchvision.transforms import v2

    pixels = np.random.default_rng(height * width).random((height, width, 3), dtype=np.float32)
    preprocessing = {**PREPROCESSING, "resize": 32, "crop": crop, "interpolation": interpolation}
    mode = v2.InterpolationMode(interpolation)
    reference = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(32, interpolation=mode, antialias=True),
            v2.CenterCrop(crop),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    expected = reference(pixels).clamp(0.0, 1.0)
    got = to_unit_tensor(preprocessing)(pixels)
    assert got.shape == (3, crop, crop) and got.dtype == torch.float32 and got.is_contiguous()
    assert torch.equal(got, expected.as_subclass(torch.Tensor))
