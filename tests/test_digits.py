"""The embedded demo data: real digits, stratified deterministic splits, class subsets."""

import numpy as np
import pytest
from PIL import Image

from qa.errors import InputError
from trainer.cli import main
from trainer.digits import parse_classes, parse_mislabel, split_indices, write_digits


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


def _labels(root) -> dict[str, dict[str, str]]:
    """split -> file name -> the class folder it was written under."""
    return {
        split: {p.name: p.parent.name for p in (root / split).rglob("*.png")}
        for split in ("train", "val", "test")
    }


def test_mislabel_files_the_asked_share_of_training_images_only(tmp_path):
    write_digits(tmp_path / "clean", size=8, seed=0)
    counts = write_digits(
        tmp_path / "flawed", size=8, seed=0, mislabel=(3, 8), mislabel_fraction=0.6
    )
    assert counts == {"train": 1257, "val": 270, "test": 270}
    clean, flawed = _labels(tmp_path / "clean"), _labels(tmp_path / "flawed")
    for split in ("val", "test"):  # the exam stays clean, byte for byte
        assert flawed[split] == clean[split]
        for name, label in clean[split].items():
            a, b = (tmp_path / t / split / label / name for t in ("clean", "flawed"))
            assert a.read_bytes() == b.read_bytes()
    assert flawed["train"].keys() == clean["train"].keys()
    moved = {n: (clean["train"][n], flawed["train"][n]) for n in clean["train"]}
    moved = {n: pair for n, pair in moved.items() if pair[0] != pair[1]}
    threes = sum(label == "3" for label in clean["train"].values())
    assert set(moved.values()) == {("3", "8")}
    assert len(moved) == round(0.6 * threes) == 77
    name = next(iter(moved))
    clean_bytes = (tmp_path / "clean" / "train" / "3" / name).read_bytes()
    assert (tmp_path / "flawed" / "train" / "8" / name).read_bytes() == clean_bytes


def test_mislabel_is_the_same_every_time(tmp_path):
    for name in "ab":
        write_digits(
            tmp_path / name, size=8, classes=[3, 8], mislabel=(3, 8), mislabel_fraction=0.5
        )
    assert _labels(tmp_path / "a") == _labels(tmp_path / "b")


@pytest.mark.parametrize("text", ["3", "3:3", "3:10", "a:b", "3-8", "\u00b3:8"])
def test_parse_mislabel_rejects_bad_pairs(text):
    with pytest.raises(InputError, match="--mislabel"):
        parse_mislabel(text)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--mislabel", "3:8"], "give --mislabel and --mislabel-fraction together"),
        (["--mislabel-fraction", "0.4"], "give --mislabel and --mislabel-fraction together"),
        (["--mislabel", "3:8", "--mislabel-fraction", "1.5"], "--mislabel-fraction: expected"),
        (["--mislabel", "3:8", "--mislabel-fraction", "nan"], "--mislabel-fraction: expected"),
    ],
)
def test_bad_mislabel_flags_are_one_line_and_write_nothing(tmp_path, capsys, flags, expected):
    out = tmp_path / "d"
    assert main(["data", "digits", "--out", str(out), "--size", "8", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not out.exists()
