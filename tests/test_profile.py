"""The data profile: one row of facts per file, from real image files written by the tests."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from qa.data import Sample, scan_image_folder
from qa.profile import (
    COLUMNS,
    PROFILE_EVAL,
    PROFILE_TRAIN,
    nearest_frame,
    nearest_hamming,
    phash_words,
    profile_samples,
)


@pytest.fixture
def folder(tmp_path):
    """An ImageFolder with an RGB and a grey image, a truncated PNG and a text file as .png."""
    rng = np.random.default_rng(0)
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "cat/a.png")
    Image.new("L", (16, 12), 255).save(tmp_path / "dog/white.png")
    whole = (tmp_path / "cat/a.png").read_bytes()
    (tmp_path / "cat/truncated.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "dog/text.png").write_bytes(b"not an image at all")
    return tmp_path


def test_profile_has_one_row_per_file_with_every_fact(folder):
    classes, samples = scan_image_folder(folder)
    frame = profile_samples(samples, folder, classes, "eval").set_index("path")
    assert list(frame.reset_index().columns) == list(COLUMNS)
    assert sorted(frame.index) == [
        "cat/a.png",
        "cat/truncated.png",
        "dog/text.png",
        "dog/white.png",
    ]
    a, white = frame.loc["cat/a.png"], frame.loc["dog/white.png"]
    assert (a["label"], a["split"], a["width"], a["height"], a["mode"], a["channels"]) == (
        "cat",
        "eval",
        30,
        20,
        "RGB",
        3,
    )
    raw = (folder / "cat/a.png").read_bytes()
    assert a["sha256"] == hashlib.sha256(raw).hexdigest() and a["file_size"] == len(raw)
    assert len(a["phash"]) == 16 and int(a["phash"], 16) >= 0
    assert a["decodes"] and pd.isna(a["error"])
    assert white["pixel_mean"] == 1.0 and white["pixel_std"] == 0.0 and white["channels"] == 1


def test_undecodable_files_are_rows_not_crashes(folder):
    classes, samples = scan_image_folder(folder)
    frame = profile_samples(samples, folder, classes, "eval").set_index("path")
    for path in ("cat/truncated.png", "dog/text.png"):
        row = frame.loc[path]
        assert not row["decodes"] and row["error"] and pd.isna(row["phash"])
        assert np.isnan(row["pixel_mean"]) and row["sha256"]
    assert frame.loc["cat/truncated.png", "width"] == 30  # the header still parsed


def test_pairs_and_samples_give_the_same_profile_and_a_pool_changes_nothing(folder):
    classes, samples = scan_image_folder(folder)
    one = profile_samples(samples, folder, classes, "train", workers=1)
    pairs = [(s.path.relative_to(folder), classes[s.label]) for s in samples]
    pooled = profile_samples(pairs, folder, classes, "train", workers=2)
    pd.testing.assert_frame_equal(one, pooled)
    missing = profile_samples([Sample(folder / "gone.png", 0)], folder, classes, "eval")
    assert not missing.loc[0, "decodes"] and "FileNotFoundError" in missing.loc[0, "error"]


def test_hamming_distances_match_bit_counting():
    rng = np.random.default_rng(1)
    words = rng.integers(0, 2**63, 300, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    ref = rng.integers(0, 2**63, 70, dtype=np.uint64) * np.uint64(2)
    dist, where = nearest_hamming(words, ref)
    brute = [[bin(int(a) ^ int(b)).count("1") for b in ref] for a in words]
    assert dist.tolist() == [min(row) for row in brute]
    assert [brute[i][j] for i, j in enumerate(where)] == dist.tolist()
    self_dist, self_where = nearest_hamming(words, words, same_set=True)
    assert (self_where != np.arange(len(words))).all()
    assert self_dist.min() > 0  # no word matched with itself


def test_phash_words_keep_all_64_bits_and_nearest_frame_skips_missing_hashes():
    words, valid = phash_words(["ffd1a48086c0d06f", None, "ffd1a48086c0d06e"])
    assert words[0] == 0xFFD1A48086C0D06F and valid.tolist() == [True, False, True]
    frame = pd.DataFrame({"path": ["a", "b", "c"], "phash": ["ffd1a48086c0d06f", None, "0" * 16]})
    near = nearest_frame(frame, frame, same_set=True)
    assert near["nearest"].iloc[[0, 2]].tolist() == ["c", "a"] and pd.isna(near["nearest"][1])
    assert pd.isna(near.loc[1, "distance"]) and near.loc[0, "distance"] == 30


def test_profile_views_name_their_split():
    assert (PROFILE_EVAL.kind, PROFILE_EVAL.model, PROFILE_EVAL.split) == (
        "profile",
        "data",
        "eval",
    )
    assert PROFILE_TRAIN.split == "train"
