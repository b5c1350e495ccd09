"""The engine: one streaming pass per view, labels matched by class name, the perturbation seam."""

import numpy as np
import pytest
import torch
from helpers import (
    DIGITS,
    PREPROCESSING,
    evidence_of,
    forward_counter,
    save_tiny,
    tiny_module,
    write_data,
    write_suite,
)

from qa.application import RunOptions, run_suite
from qa.data import content_fingerprint, fingerprint_from_hashes, load_dataset
from qa.engine import EvidenceRequest, build_evidence, load_splits
from qa.errors import InputError
from qa.evidence import CLEAN, View
from qa.formats import load_any
from qa.inference import ImageFiles
from qa.preprocess import load_rgb, normalize, to_unit_tensor
from qa.suite import DataSpec, load_suite

BASELINE = View(model="baseline")
N = 60


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    return load_any(save_tiny(tmp_path_factory.mktemp("ckpt") / "cand.pt", seed=1))


def _suite(tmp_path, data, checks="- {kind: top1_accuracy, min: 0.0}\n", head=""):
    return load_suite(write_suite(tmp_path / "suite.yaml", data, checks, head))


def test_logits_match_a_plain_forward_pass_and_labels_follow_folder_names(
    tmp_path, data, candidate
):
    suite = _suite(tmp_path, data)
    ev = evidence_of(suite, candidate, [CLEAN])
    assert ev.logits().shape == (N, 10) and ev.logits().dtype == np.float32
    assert ev.sample_ids[0] == "0/digit-0010.png" and len(set(ev.sample_ids)) == N
    assert [ev.sample_ids[i].split("/")[0] for i in range(N)] == [DIGITS[y] for y in ev.labels]
    # the reference: decode, preprocess and run three images by hand
    unit, norm = to_unit_tensor(PREPROCESSING), normalize(PREPROCESSING)
    picks = [0, 31, N - 1]
    images = torch.stack([unit(load_rgb(data / ev.sample_ids[i])) for i in picks])
    with torch.inference_mode():
        expected = candidate.module(norm(images)).numpy()
    np.testing.assert_allclose(ev.logits()[picks], expected, rtol=1e-4, atol=1e-4)


def test_a_request_needs_no_suite_and_the_evidence_carries_each_models_facts(tmp_path, data):
    """The engine's whole input is an EvidenceRequest: data splits, models and views, no suite.
    The models' facts keep their full provenance (the fingerprint's hashes, which checks read)."""
    fingerprint = fingerprint_from_hashes(["ab" * 32, "cd" * 32])
    path = save_tiny(tmp_path / "fp.pt", seed=1, provenance={"data_fingerprint": fingerprint})
    model = load_any(path)
    splits = load_splits({"eval": DataSpec(path=str(data))}, [CLEAN], model.class_names)
    models = {"candidate": model, "baseline": None}
    request = EvidenceRequest(splits, models, [CLEAN], cache_dir=None, progress=False)
    ev = build_evidence(request)
    assert ev.logits().shape == (N, 10) and ev.info == {"excluded": {}}
    facts = ev.model_facts["candidate"]
    assert facts["path"] == str(path) and facts["sha256"] == model.digest
    hashes = facts["provenance"]["data_fingerprint"]["hashes"]
    np.testing.assert_array_equal(hashes, fingerprint["hashes"])
    assert ev.model_facts["baseline"] is None


def test_temperature_divides_the_logits(tmp_path, data, candidate):
    hot = load_any(save_tiny(tmp_path / "hot.pt", seed=1, temperature=2.0))
    suite = _suite(tmp_path, data)
    plain = evidence_of(suite, candidate, [CLEAN])
    scaled = evidence_of(suite, hot, [CLEAN])
    np.testing.assert_allclose(scaled.logits(), plain.logits() / 2.0, rtol=1e-5, atol=1e-6)


def test_candidate_and_baseline_share_one_decoding_pass_and_class_order(
    tmp_path, data, candidate, monkeypatch
):
    # The baseline: the candidate's weights, its classes listed in reverse order.
    module = tiny_module(seed=1)
    with torch.no_grad():
        module.fc.weight.copy_(module.fc.weight.flip(0))
        module.fc.bias.copy_(module.fc.bias.flip(0))
    baseline = load_any(save_tiny(tmp_path / "base.pt", class_names=DIGITS[::-1], module=module))
    decoded = []
    original = ImageFiles.__getitem__
    monkeypatch.setattr(ImageFiles, "__getitem__", lambda s, i: decoded.append(i) or original(s, i))
    calls = forward_counter(monkeypatch)
    suite = _suite(tmp_path, data)
    ev = evidence_of(suite, candidate, [CLEAN, BASELINE], baseline)
    assert len(decoded) == N  # each image decoded once for both models
    assert sum(calls) == 2 * N
    np.testing.assert_allclose(ev.logits(BASELINE), ev.logits(CLEAN), rtol=1e-5, atol=1e-5)


def test_the_perturbation_seam_sees_unit_images_and_sample_ids(tmp_path, data, candidate):
    seen = []

    def blank(images, view, ids):
        seen.extend(ids)
        assert images.min() >= 0.0 and images.max() <= 1.0
        return torch.zeros_like(images)

    noisy = View(perturbation="blank", severity=1)
    suite = _suite(tmp_path, data)
    ev = evidence_of(suite, candidate, [CLEAN, noisy], perturb=blank)
    assert seen == ev.sample_ids
    assert np.ptp(ev.logits(noisy), axis=0).max() < 1e-4  # every blank image scores the same
    without = evidence_of(suite, candidate, [CLEAN, noisy])
    assert noisy not in without.arrays  # left out, so the check that asked reports an error


def test_a_dataset_may_hold_a_subset_of_the_models_classes(tmp_path, data):
    wide = load_any(save_tiny(tmp_path / "wide.pt", class_names=["extra", *DIGITS]))
    ev = evidence_of(_suite(tmp_path, data), wide, [CLEAN])
    assert ev.class_names[0] == "extra" and ev.labels.min() == 1 and ev.labels.max() == 10


def test_an_eval_class_the_model_does_not_know_shows_both_lists(tmp_path, data):
    narrow = load_any(save_tiny(tmp_path / "narrow.pt", class_names=DIGITS[:9]))
    with pytest.raises(InputError) as err:
        evidence_of(_suite(tmp_path, data), narrow, [CLEAN])
    message = str(err.value)
    assert "classes [9] are not classes of the model" in message
    assert "data classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in message
    assert "model classes: [0, 1, 2, 3, 4, 5, 6, 7, 8]" in message
    assert "\n" not in message


def test_an_undecodable_image_is_one_line_naming_it(tmp_path, data, candidate):
    import shutil

    shutil.copytree(data, tmp_path / "eval")
    bad = tmp_path / "eval" / "3" / "broken.png"
    bad.write_bytes(b"not a png at all")
    suite = load_suite(
        write_suite(tmp_path / "s.yaml", tmp_path / "eval", "- {kind: top1_accuracy, min: 0}\n")
    )
    with pytest.raises(InputError, match=r"broken\.png: cannot decode the image"):
        evidence_of(suite, candidate, [CLEAN], workers=1)


def test_manifest_columns_become_slices(tmp_path, data, candidate):
    rows = ["path,label,camera"]
    for i, path in enumerate(sorted((data).rglob("*.png"))):
        rows.append(f"{path.relative_to(data).as_posix()},{path.parent.name},{'AB'[i % 2]}")
    (tmp_path / "eval.csv").write_text("\n".join(rows) + "\n")
    checks = "- {kind: top1_accuracy, min: 0.0, slice: {column: camera, equals: A}}\n"
    suite = load_suite(
        write_suite(
            tmp_path / "s.yaml",
            f"{{manifest: {tmp_path / 'eval.csv'}, root: {data}}}",
            checks,
        )
    )
    ev = evidence_of(suite, candidate, [CLEAN])
    assert sorted(set(ev.metadata["camera"])) == ["A", "B"]
    folder = evidence_of(_suite(tmp_path, data), candidate, [CLEAN])
    np.testing.assert_array_equal(ev.labels, folder.labels)
    assert ev.sample_ids == folder.sample_ids  # ids are paths relative to the root either way


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        ("file,label\na.png,0\n", r"eval\.csv:1: expected columns path,label, found file,label"),
        ("path,label\n0/digit-0010.png\n", r"eval\.csv:2: expected 2 fields, found 1"),
        ("path,label\n0/digit-0010.png,\n", r"eval\.csv:2: column 'label': expected a value"),
        (
            "path,label\n0/digit-0010.png,0\nnope.png,1\n",
            r"eval\.csv:3: column 'path': .*nope\.png: not found",
        ),
    ],
)
def test_a_bad_manifest_names_file_line_and_column(tmp_path, data, csv, expected):
    (tmp_path / "eval.csv").write_text(csv)

    class Spec:
        manifest, root = tmp_path / "eval.csv", data

    with pytest.raises(InputError, match=expected):
        load_dataset(Spec)


def test_the_fingerprint_follows_content(tmp_path, data):
    import shutil

    shutil.copytree(data, tmp_path / "eval")

    class Spec:
        manifest, path = None, tmp_path / "eval"

    before = content_fingerprint(load_dataset(Spec))
    assert content_fingerprint(load_dataset(Spec)) == before
    image = next((tmp_path / "eval" / "5").iterdir())
    raw = bytearray(image.read_bytes())
    raw[-20] ^= 0xFF  # same size, different bytes
    image.write_bytes(bytes(raw))
    assert content_fingerprint(load_dataset(Spec)) != before


def test_save_predictions_writes_ids_labels_and_logits(tmp_path, data):
    save_tiny(tmp_path / "cand.pt", seed=1)
    suite = write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0.0}\n")
    options = RunOptions(
        out=None, cache_dir=None, progress=False, save_predictions_to=tmp_path / "pred.npz"
    )
    report = run_suite(suite, tmp_path / "cand.pt", options)
    assert report.exit_code == 0
    with np.load(tmp_path / "pred.npz") as saved:
        assert saved["eval/ids"].shape == (N,) and saved["eval/labels"].shape == (N,)
        assert saved["candidate/eval/clean/logits"].shape == (N, 10)
        assert saved["class_names"].tolist() == DIGITS
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
