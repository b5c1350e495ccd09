"""Profile views through the engine: cached as JSON, leakage by fingerprint, broken files."""

import base64
import io
import json
import shutil
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from helpers import save_tiny, write_data, write_suite

from qa import profile_views
from qa.application import RunOptions, run_suite
from qa.checks import CheckParams, CheckResult
from qa.data import fingerprint_from_hashes, load_dataset, sha256_bytes
from qa.errors import InputError
from qa.inference import Split
from qa.profile import PROFILE_EVAL
from qa.report import json_report
from qa.result import CheckOutcome
from qa.thumbnails import attach_thumbnails

N = 20


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("digits"), per_class=2)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "cand.pt", seed=1)


@pytest.fixture
def broken(tmp_path, data):
    """The eval data with one file that is not an image at all."""
    root = shutil.copytree(data, tmp_path / "eval")
    (root / "3" / "broken.png").write_bytes(b"not a png at all")
    return root


def _run(tmp_path, data, ckpt, checks, **kwargs):
    suite = write_suite(tmp_path / "suite.yaml", data, checks)
    return run_suite(suite, ckpt, RunOptions(progress=False, cache_dir=None, **kwargs))


def test_profiles_are_cached_as_json_and_a_corrupt_entry_is_recomputed(tmp_path, data, monkeypatch):
    class Spec:
        manifest, path = None, data

    splits = {"eval": Split(load_dataset(Spec), np.zeros(N, dtype=np.int64))}
    cache_dir = tmp_path / "cache"
    fresh = profile_views.compute_profiles([PROFILE_EVAL], splits, cache_dir)["eval"]
    (entry,) = cache_dir.rglob("*.json")  # JSON: nothing in the cache is unpickled
    assert fresh["path"].tolist() == splits["eval"].dataset.ids

    def no_reading(*args, **kwargs):
        raise AssertionError("profiled again despite a sound cache entry")

    monkeypatch.setattr(profile_views, "profile_samples", no_reading)
    cached = profile_views.compute_profiles([PROFILE_EVAL], splits, cache_dir)["eval"]
    pd.testing.assert_frame_equal(cached, fresh)

    monkeypatch.undo()
    entry.write_text(entry.read_text().replace('"decodes"', '"decoded"'))
    again = profile_views.compute_profiles([PROFILE_EVAL], splits, cache_dir)["eval"]
    pd.testing.assert_frame_equal(again, fresh)
    assert json.loads(entry.read_text())["columns"]["decodes"] == [True] * N


def test_an_eval_file_in_the_training_fingerprint_fails_leakage(tmp_path, data, ckpt):
    leaked = sorted(data.rglob("*.png"))[5]
    hashes = [sha256_bytes(leaked.read_bytes()), sha256_bytes(b"some other training image")]
    provenance = {"data_fingerprint": fingerprint_from_hashes(hashes)}
    save_tiny(tmp_path / "fp.pt", seed=1, provenance=provenance)
    out = tmp_path / "reports"
    report = _run(tmp_path, data, tmp_path / "fp.pt", "- {kind: leakage}\n", out=out)
    (outcome,) = report.outcomes
    assert outcome.status == "fail" and report.exit_code == 1
    assert outcome.result.details["failing_paths"] == [leaked.relative_to(data).as_posix()]
    assert outcome.result.details["source"] == "checkpoint fingerprint"
    written = json_report.load(out / "result.json")
    assert "hashes" not in json.dumps(written)  # the report keeps a summary only
    assert written["checkpoint"]["provenance"]["data_fingerprint"]["n_unique"] == 2


def test_a_corrupt_eval_file_is_reported_by_decodable_and_left_out_of_inference(
    tmp_path, broken, ckpt
):
    checks = "- {kind: decodable}\n- {kind: top1_accuracy, min: 0}\n"
    report = _run(tmp_path, broken, ckpt, checks, out=None)
    decodable, top1 = report.outcomes
    assert decodable.status == "fail"
    assert decodable.result.details["failing_paths"] == ["3/broken.png"]
    assert decodable.result.details["thumbnails"] == []  # nothing to show for a broken file
    assert top1.status == "pass" and top1.result.metrics["n"] == N
    assert report.overview["n"] == N


def test_a_corrupt_eval_file_without_a_decodable_check_is_exit_2_naming_it(tmp_path, broken, ckpt):
    checks = "- {kind: image_size, min_width: 1}\n- {kind: top1_accuracy, min: 0}\n"
    with pytest.raises(InputError, match=r"3/broken\.png: cannot decode the image"):
        _run(tmp_path, broken, ckpt, checks, out=None)


def test_failing_data_checks_carry_small_png_thumbnails(tmp_path, data, ckpt):
    from PIL import Image

    checks = "- {kind: image_size, max_width: 8, show: 20}\n"
    report = _run(tmp_path, data, ckpt, checks, out=tmp_path / "reports")
    (outcome,) = report.outcomes
    thumbnails = outcome.result.details["thumbnails"]
    assert outcome.status == "fail" and len(thumbnails) == 8  # of 20 failing, 8 shown
    assert [t["path"] for t in thumbnails] == outcome.result.details["failing_paths"][:8]
    prefix = "data:image/png;base64,"
    assert thumbnails[0]["data_uri"].startswith(prefix)
    raw = base64.b64decode(thumbnails[0]["data_uri"][len(prefix) :])
    with Image.open(io.BytesIO(raw)) as thumb:
        assert thumb.format == "PNG" and thumb.size == (64, 64)  # 16 px, enlarged 4x
        pixels = np.asarray(thumb.convert("L"))
    assert (pixels[::4, ::4] == pixels[3::4, 3::4]).all()  # nearest-neighbour: 4x4 blocks
    written = json_report.load(tmp_path / "reports" / "result.json")
    assert "data:image/png;base64," in json.dumps(written)


class _Split(CheckParams):
    """Test-only: a split to read."""

    split: str = "eval"
    example: ClassVar[dict] = {}


class _ReportsUndecodable(_Split):
    """Test-only: a kind that reports undecodable files, whatever its name."""

    reports_undecodable: ClassVar[bool] = True


class _ShowsThumbnails(_Split):
    """Test-only: a kind whose failing paths are worth showing, whatever its family."""

    shows_thumbnails: ClassVar[bool] = True


def _spec(name: str, kind: str, params: CheckParams):
    return SimpleNamespace(name=name, kind=kind, params=params)


def test_undecodable_files_are_left_out_for_a_kind_that_says_it_reports_them():
    suite = SimpleNamespace(
        checks=[
            _spec("a", "my_decodable", _ReportsUndecodable(split="train")),
            _spec("b", "decodable_lookalike", _Split(split="calibration")),
        ]
    )
    assert profile_views.decodability_checked(suite) == {"train"}


def test_thumbnails_follow_the_kinds_flag_not_its_family(data):
    path = sorted(data.rglob("*.png"))[0].relative_to(data).as_posix()
    specs = [_spec("shown", "k1", _ShowsThumbnails()), _spec("hidden", "k2", _Split())]
    outcomes = [
        CheckOutcome(
            name,
            "k",
            family,
            "fail",
            "fail",
            CheckResult("fail", "x", details={"failing_paths": [path]}),
            None,
            0.0,
        )
        for name, family in (("shown", "accuracy"), ("hidden", "data"))
    ]
    attach_thumbnails(outcomes, SimpleNamespace(checks=specs), {"eval": data})
    shown, hidden = (o.result.details for o in outcomes)
    assert [t["path"] for t in shown["thumbnails"]] == [path]
    assert "thumbnails" not in hidden
