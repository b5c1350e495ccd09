"""The embedded demo data: real digits, stratified deterministic splits, class subsets."""

import numpy as np
import pytest
from PIL import Image

from qa.errors import InputError
from trainer.digits import parse_classes, split_indices, write_digits


def test_split_is_stratified_disjoint_and_deterministic():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    a, b = split_indices(labels, seed=3), split_indices(labels, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], split_indices(labels, seed=4)["test"])
    joined = np.concatenate(list(a.values()))
    assert len(joined) == len(set(joined)) == len(labels)
    for split, idx in a.items():
        share = np.bincount(labels[idx], minlength=10) / len(idx)
        assert np.abs(share - np.bincount(labels) / len(labels)).max() < 0.02, split


def test_written_tree_is_an_image_folder_of_upscaled_pngs(tmp_path):
    counts = write_digits(tmp_path / "d", size=16, seed=0)
    assert counts == {"train": 1257, "val": 270, "test": 270}
    files = sorted((tmp_path / "d" / "test").rglob("*.png"))
    assert len(files) == 270
    assert {f.parent.name for f in files} == {str(d) for d in range(10)}
    with Image.open(files[0]) as img:
        assert img.size == (16, 16) and img.mode == "L"
        assert np.asarray(img).max() > 200  # ink reaches full intensity


def test_class_subset_reuses_the_same_split(tmp_path):
    write_digits(tmp_path / "all", size=8, seed=0)
    write_digits(tmp_path / "src", size=8, seed=0, classes=[0, 1, 2, 3, 4])
    for split in ("train", "test"):
        sub = {p.relative_to(tmp_path / "src") for p in (tmp_path / "src" / split).rglob("*.png")}
        full = {p.relative_to(tmp_path / "all") for p in (tmp_path / "all" / split).rglob("*.png")}
        assert sub and sub <= full
        assert {p.parent.name for p in sub} == {"0", "1", "2", "3", "4"}


@pytest.mark.parametrize(("text", "expected"), [("0-4", [0, 1, 2, 3, 4]), ("7,1,1", [1, 7])])
def test_parse_classes(text, expected):
    assert parse_classes(text) == expected


@pytest.mark.parametrize("text", ["a-b", "3-12", "-1"])
def test_parse_classes_rejects_bad_selection(text):
    with pytest.raises(InputError, match="--classes"):
        parse_classes(text)
