"""Data checks on real image files written by the tests (scikit-learn's handwritten digits).

Each finding is planted in a fresh copy of the data, so every test can fail: a corrupt file, a
copy, a leaked eval file, a resized near-copy, a missing class, shifted pixels or labels.
"""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image
from pydantic import ValidationError
from sklearn.datasets import load_digits

from qa.checks import REGISTRY, load_all
from qa.checks import data as checks
from qa.data import fingerprint_from_hashes, scan_image_folder
from qa.errors import InputError
from qa.evidence import Evidence
from qa.profile import profile_samples
from qa.suite import load_suite

DATA_KINDS = sorted(k for k, spec in load_all().items() if spec.family == "data")


def _write(root, images, labels, brighten=0):
    """Write digit images (0..16 intensities) as 8x8 grey PNGs under root/<label>/."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        pixels = np.clip(image * 255 / 16 + brighten, 0, 255).astype(np.uint8)
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(root / str(label) / f"d{i:04d}.png")
    return root


def _profile(root, split):
    names, samples = scan_image_folder(root)
    return profile_samples(samples, root, names, split)


def _evidence(eval_profile, train_profile=None, classes=None, facts=None):
    profiles = {"eval": eval_profile}
    if train_profile is not None:
        profiles["train"] = train_profile
    names = classes or sorted(eval_profile["label"].unique())
    return Evidence(names, np.zeros(0, int), [], profiles=profiles, model_facts=facts or {})


def _run(kind, evidence, **params):
    spec = REGISTRY[kind]
    return spec.run(evidence, spec.params.model_validate(params, strict=True))


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    return data.images[order], data.target[order]


@pytest.fixture
def small(tmp_path, digits):
    """Ten distinct digits, one per class, as eval; and a train split of the next 100."""
    images, labels = digits
    first = [int(np.flatnonzero(labels == c)[0]) for c in range(10)]
    eval_root = _write(tmp_path / "eval", images[first], labels[first])
    train_root = _write(tmp_path / "train", images[-100:], labels[-100:])
    return eval_root, train_root


def test_a_truncated_png_is_reported_by_path(small):
    eval_root, _ = small
    assert _run("decodable", _evidence(_profile(eval_root, "eval"))).status == "pass"
    good = eval_root / "3/d0003.png"
    (eval_root / "3/broken.png").write_bytes(good.read_bytes()[:40])
    result = _run("decodable", _evidence(_profile(eval_root, "eval")))
    assert result.status == "fail" and result.metrics["n_failed"] == 1
    assert result.details["failing_paths"] == ["3/broken.png"] and "3/broken.png" in result.message
    assert "broken.png" in next(iter(result.details["errors"]))


def test_an_exact_duplicate_is_found_with_both_copies(small):
    eval_root, _ = small
    assert _run("exact_duplicates", _evidence(_profile(eval_root, "eval"))).status == "pass"
    shutil.copy(eval_root / "5/d0005.png", eval_root / "5/copy.png")
    result = _run("exact_duplicates", _evidence(_profile(eval_root, "eval")))
    assert result.status == "fail" and result.metrics["n_failed"] == 2
    assert result.details["groups"] == [["5/copy.png", "5/d0005.png"]]


def test_a_leaked_eval_file_is_found_through_the_train_split(small):
    eval_root, train_root = small
    clean = _evidence(_profile(eval_root, "eval"), _profile(train_root, "train"))
    assert _run("leakage", clean).status == "pass"
    shutil.copy(eval_root / "7/d0007.png", train_root / "7/seen.png")
    result = _run("leakage", _evidence(_profile(eval_root, "eval"), _profile(train_root, "train")))
    assert result.status == "fail" and result.details["failing_paths"] == ["7/d0007.png"]
    assert result.details["source"] == "train split" and "train split" in result.message


def test_a_leaked_eval_file_is_found_through_the_checkpoint_fingerprint(small):
    eval_root, train_root = small
    eval_profile, train_profile = _profile(eval_root, "eval"), _profile(train_root, "train")
    hashes = train_profile["sha256"].tolist()
    assert _run("leakage", _evidence(eval_profile)).status == "skip"
    clean = {"candidate": {"provenance": {"data_fingerprint": fingerprint_from_hashes(hashes)}}}
    assert _run("leakage", _evidence(eval_profile, facts=clean)).status == "pass"
    leaked_hash = eval_profile.loc[eval_profile["path"] == "2/d0002.png", "sha256"].item()
    fp = fingerprint_from_hashes([*hashes, leaked_hash])
    facts = {"candidate": {"provenance": {"data_fingerprint": fp}}}
    result = _run("leakage", _evidence(eval_profile, facts=facts))
    assert result.status == "fail" and result.details["failing_paths"] == ["2/d0002.png"]
    assert result.details["source"] == "checkpoint fingerprint"


def test_a_resized_copy_is_a_near_duplicate_and_a_different_image_is_not(small):
    eval_root, train_root = small
    assert _run("near_duplicates", _evidence(_profile(eval_root, "eval"))).status == "pass"
    with Image.open(eval_root / "4/d0004.png") as img:
        img.resize((24, 24), Image.BICUBIC).save(eval_root / "4/bigger.png")
        img.resize((24, 24), Image.BICUBIC).save(train_root / "4/bigger.png")
    result = _run("near_duplicates", _evidence(_profile(eval_root, "eval")))
    assert result.status == "fail"
    assert sorted(result.details["failing_paths"]) == ["4/bigger.png", "4/d0004.png"]
    (eval_root / "4/bigger.png").unlink()
    pair = _evidence(_profile(eval_root, "eval"), _profile(train_root, "train"))
    near = _run("near_leakage", pair)
    assert near.status == "fail" and near.details["failing_paths"] == ["4/d0004.png"]
    assert near.details["pairs"][0]["nearest"] == "4/bigger.png"


def test_a_missing_class_is_named_by_the_label_set_check(small):
    eval_root, _ = small
    classes = [str(c) for c in range(10)]
    assert (
        _run("label_set", _evidence(_profile(eval_root, "eval"), classes=classes)).status == "pass"
    )
    shutil.rmtree(eval_root / "6")
    evidence = _evidence(_profile(eval_root, "eval"), classes=classes)
    result = _run("label_set", evidence)
    assert result.status == "fail" and result.details["missing_classes"] == ["6"]
    assert "missing 6" in result.message
    extra = _run("label_set", _evidence(_profile(eval_root, "eval"), classes=classes[:8]))
    assert extra.status == "fail" and extra.details["unknown_classes"] == ["8", "9"]
    counts = _run("min_samples_per_class", evidence, min=1)
    assert counts.status == "fail" and counts.details["failing_classes"] == ["6"]
    assert _run("class_balance", evidence, max_ratio=3.0).status == "fail"


def test_image_size_and_mode_bounds(small):
    evidence = _evidence(_profile(small[0], "eval"))
    assert _run("image_size", evidence, min_width=8, max_height=8, modes=["L"]).status == "pass"
    result = _run("image_size", evidence, modes=["RGB"], show=2)
    assert result.status == "fail" and result.metrics["n_failed"] == 10
    assert len(result.details["failing_paths"]) == 2 and "and 7 more" in result.message


@pytest.fixture(scope="module")
def drift_splits(tmp_path_factory, digits):
    """A fresh 50/50 split of the digits, a brightened eval and a class-imbalanced eval."""
    images, labels = digits
    root = tmp_path_factory.mktemp("drift")
    half = len(labels) // 2
    train = _profile(_write(root / "train", images[:half], labels[:half]), "train")
    fresh = _profile(_write(root / "fresh", images[half:], labels[half:]), "eval")
    bright = _profile(_write(root / "bright", images[half:], labels[half:], brighten=40), "eval")
    keep = np.flatnonzero((labels[half:] >= 5) | (np.arange(len(labels) - half) % 5 == 0)) + half
    skewed = _profile(_write(root / "skewed", images[keep], labels[keep]), "eval")
    return train, fresh, bright, skewed


def test_drift_is_found_on_shifted_data_but_not_on_a_fresh_split(drift_splits):
    train, fresh, bright, skewed = drift_splits
    for kind in ("label_drift", "pixel_drift"):
        same = _run(kind, _evidence(fresh, train))
        assert same.status == "pass", same.message
    pixel = _run("pixel_drift", _evidence(bright, train))
    assert pixel.status == "fail" and pixel.metrics["ks_pixel_mean_statistic"] > 0.5
    assert _run("label_drift", _evidence(bright, train)).status == "pass"
    label = _run("label_drift", _evidence(skewed, train))
    assert label.status == "fail" and label.metrics["chi2_label_p_value"] < 1e-6
    assert _run("label_drift", _evidence(fresh)).status == "skip"


def test_the_passthrough_runs_any_expectation_over_the_profile(small):
    evidence = _evidence(_profile(small[0], "eval"))
    kwargs = {"column": "width", "min_value": 8}
    ok = _run("expectation", evidence, expectation="ExpectColumnValuesToBeBetween", kwargs=kwargs)
    assert ok.status == "pass"
    kwargs = {"column": "width", "min_value": 9}
    bad = _run("expectation", evidence, expectation="ExpectColumnValuesToBeBetween", kwargs=kwargs)
    assert bad.status == "fail" and bad.metrics["n_failed"] == 10
    assert len(bad.details["failing_paths"]) == 10
    kwargs = {"column": "pixel_mean", "min_value": 0.9}
    mean = _run("expectation", evidence, expectation="ExpectColumnMeanToBeBetween", kwargs=kwargs)
    assert mean.status == "fail" and mean.metrics["observed_value"] < 0.9


@pytest.mark.parametrize(
    ("expectation", "kwargs", "named"),
    [
        ("ExpectColumnValuesToBeBetwen", {"column": "width"}, "ExpectColumnValuesToBeBetween"),
        ("ExpectColumnValuesToBeBetween", {"column": "width", "min_val": 1}, "'min_value'"),
        ("ExpectColumnValuesToBeBetween", {"column": "widht", "min_value": 1}, "'width'"),
    ],
)
def test_a_bad_passthrough_is_rejected_with_the_nearest_names(expectation, kwargs, named, tmp_path):
    params = REGISTRY["expectation"].params
    with pytest.raises(ValidationError, match=named):
        params.model_validate({"expectation": expectation, "kwargs": kwargs}, strict=True)
    entry = {"kind": "expectation", "expectation": expectation, "kwargs": kwargs}
    suite = {"name": "t", "data": {"eval": "d"}, "checks": [entry]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    with pytest.raises(InputError, match=named):
        load_suite(tmp_path / "suite.yaml")


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_a_missing_profile_is_an_error_or_a_skip_never_a_pass(kind):
    params = REGISTRY[kind].params.model_validate(REGISTRY[kind].params.example, strict=True)
    result = REGISTRY[kind].run(Evidence(["0", "1"], np.zeros(0, int), []), params)
    assert result.status in ("error", "skip") and result.message


def test_importing_the_data_checks_does_not_import_great_expectations():
    code = "import sys, qa.checks.data; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert checks.gx.__name__ == "qa.gx"
