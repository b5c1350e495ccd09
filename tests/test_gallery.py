"""The report's gallery (qa.gallery): mistakes, flips, perturbation strips and matched files,
from real runs on real digits, and its size bound on synthetic data with many of each."""

import base64
import functools
import io
import json
import shutil

import numpy as np
import pytest
import torch
from helpers import PREPROCESSING, outcome, save_tiny, write_data, write_suite
from PIL import Image
from scipy.special import softmax

import qa.data
import qa.data_index
from qa import gallery as gallery_module
from qa.application import RunOptions, evidence_request, run_suite
from qa.checks import CheckResult
from qa.data import Dataset, Sample
from qa.engine import EvidenceRequest
from qa.errors import InputError
from qa.evidence import BASELINE, CLEAN, Evidence, View
from qa.formats import load_any
from qa.gallery import BUDGET, MAX_ITEMS, build_gallery, strip_images
from qa.inference import SEED, Split
from qa.perturb import known_names, perturb_view
from qa.preprocess import load_rgb, make_preprocessing, normalize, to_unit_tensor
from qa.report import html, json_report
from qa.suite import load_suite

CHECKS = """\
- {kind: top1_accuracy, min: 0}
- {kind: negative_flip_rate, max: 1}
- {kind: corruption_accuracy, perturbations: [gaussian_noise], severities: [1, 5], min: 0}
- {kind: leakage, severity: warn}
- {kind: near_leakage, severity: warn}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, data, ckpt):
    """One qa run with a baseline, a perturbation and a train split overlapping eval (the
    first two test digits of each class are among the first three of train)."""
    root = tmp_path_factory.mktemp("gallery")
    train = write_data(root / "train", per_class=3)
    baseline = save_tiny(root / "base.pt", seed=5)
    suite = write_suite(root / "suite.yaml", data, CHECKS, head=f"baseline: {baseline}\n")
    suite.write_text(suite.read_text().replace(f"eval: {data}", f"eval: {data}\n  train: {train}"))
    preds = root / "preds.npz"
    options = RunOptions(out=None, progress=False, cache_dir=None, save_predictions_to=preds)
    report = run_suite(suite, ckpt, options)
    return {
        "report": report,
        "npz": dict(np.load(preds)),
        "suite": suite,
        "train": train,
        "outcomes": {o.name: o for o in report.outcomes},
    }


def _pixels(uri: str) -> np.ndarray:
    head, payload = uri.split(",", 1)
    assert head in ("data:image/png;base64", "data:image/jpeg;base64")
    with Image.open(io.BytesIO(base64.b64decode(payload))) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64) / 255


def test_confidences_are_the_softmax_maximum():
    logits = np.random.default_rng(0).normal(0, 30, (50, 7))
    np.testing.assert_allclose(
        gallery_module.confidences(logits), softmax(logits, axis=1).max(axis=1), rtol=1e-12
    )


def test_the_most_confident_mistakes_come_first_with_their_labels_and_confidence(run):
    npz, names = run["npz"], run["report"].overview["class_names"]
    logits, labels = npz["candidate/eval/clean/logits"], npz["eval/labels"]
    ids = list(npz["eval/ids"])
    probs = softmax(logits.astype(np.float64), axis=1)
    wrong = [i for i in range(len(ids)) if probs[i].argmax() != labels[i]]
    expected = sorted(wrong, key=lambda i: -probs[i].max())[:MAX_ITEMS]
    section = run["report"].gallery["confident_mistakes"]
    assert section["total"] == len(wrong) > MAX_ITEMS
    assert [m["id"] for m in section["shown"]] == [ids[i] for i in expected]
    for m, i in zip(section["shown"], expected, strict=True):
        assert m["label"] == names[labels[i]] != m["predicted"] == names[probs[i].argmax()]
        assert m["confidence"] == pytest.approx(probs[i].max(), rel=1e-6)
        assert _pixels(m["data_uri"]).shape == (16, 16, 3)  # the model's input, at its size
    shown = [m["confidence"] for m in section["shown"]]
    assert shown == sorted(shown, reverse=True)


def test_the_negative_flips_are_the_negative_flip_rate_checks(run):
    check = run["outcomes"]["negative_flip_rate"].result
    section = run["report"].gallery["negative_flips"]
    assert section["total"] == check.metrics["negative_flips"] > 0
    assert section["listed_in"] == "negative_flip_rate"
    keys = ("id", "label", "baseline", "candidate")
    listed = [{k: f[k] for k in keys} for f in check.details["flips"][:MAX_ITEMS]]
    assert [{k: f[k] for k in keys} for f in section["shown"]] == listed


def test_a_perturbation_strip_is_what_the_model_saw(run, data, ckpt):
    (strip,) = run["report"].gallery["perturbations"]["shown"]
    assert strip["perturbation"] == "gaussian_noise"
    frames = strip["images"]
    assert [f["severity"] for f in frames] == [0, 1, 2, 3, 4, 5]
    clean, strongest = _pixels(frames[0]["data_uri"]), _pixels(frames[5]["data_uri"])
    assert np.abs(strongest - clean).mean() > 0.03
    # predictions where the run computed the view (clean, s1, s5), none elsewhere
    npz, names = run["npz"], run["report"].overview["class_names"]
    index = list(npz["eval/ids"]).index(strip["id"])
    for f in frames:
        name = "clean" if f["severity"] == 0 else f"gaussian_noise-s{f['severity']}"
        key = f"candidate/eval/{name}/logits"
        if f["severity"] in (0, 1, 5):
            assert f["predicted"] == names[npz[key][index].argmax()]
        else:
            assert "predicted" not in f and key not in npz
    # the images strip_images makes give the run's logits when fed to the model
    model = load_any(ckpt)
    suite = load_suite(run["suite"])
    request = evidence_request(suite, {"candidate": model}, [], torch.device("cpu"))
    image = to_unit_tensor(PREPROCESSING)(load_rgb(data / strip["id"]))
    images = strip_images(image, strip["id"], "gaussian_noise", request)
    with torch.inference_mode():
        for severity in (1, 5):
            got = model.module(normalize(PREPROCESSING)(images[severity][None]))[0].numpy()
            want = npz[f"candidate/eval/gaussian_noise-s{severity}/logits"][index]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_leakage_pair_names_the_eval_file_and_the_train_file_it_matched(run, data):
    details = run["outcomes"]["leakage"].result.details
    assert details["pairs"] and len(details["pairs"]) == len(details["failing_paths"])
    for pair in details["pairs"]:
        assert (data / pair["path"]).read_bytes() == (run["train"] / pair["nearest"]).read_bytes()
    section = run["report"].gallery["pairs"]
    first = section["shown"][0]
    assert first["check"] == "leakage"
    assert [(i["split"], i["path"]) for i in first["images"]] == [
        ("eval", details["pairs"][0]["path"]),
        ("train", details["pairs"][0]["nearest"]),
    ]
    # near_leakage matched the same files: each pair is shown once
    shown = [tuple(i["path"] for i in p["images"]) for p in section["shown"]]
    assert len(shown) == len(set(shown))


def test_a_data_only_run_shows_the_exact_duplicates_it_found_and_nothing_else(tmp_path, data):
    copy = tmp_path / "eval"
    shutil.copytree(data, copy)
    original = sorted((copy / "3").iterdir())[0]
    shutil.copy(original, copy / "3" / "copy.png")
    suite = write_suite(tmp_path / "suite.yaml", copy, "- {kind: exact_duplicates}\n")
    report = run_suite(suite, save_tiny(tmp_path / "c.pt"), RunOptions(out=None, progress=False))
    assert list(report.gallery) == ["pairs"]  # no model view: no mistakes, flips or strips
    (pair,) = report.gallery["pairs"]["shown"]
    assert pair["kind"] == "exact_duplicates" and pair["distance"] is None
    assert [(i["split"], i["path"]) for i in pair["images"]] == [
        ("eval", "3/copy.png"),  # in the split's (sorted) order
        ("eval", f"3/{original.name}"),
    ]
    assert _pixels(pair["images"][0]["data_uri"]).tolist() == (
        _pixels(pair["images"][1]["data_uri"]).tolist()
    )


def test_the_html_shows_each_section_and_escapes_hostile_names(run, tmp_path):
    doc = json_report.to_dict(run["report"])
    hostile = '<script>alert("x")</script>'
    doc["gallery"]["confident_mistakes"]["shown"][0]["label"] = hostile
    doc["gallery"]["pairs"]["shown"][0]["images"][0]["path"] = hostile
    page = html.render(doc)
    for marker in ('id="confident-mistakes"', 'id="negative-flips"', "strip", 'id="pairs"'):
        assert marker in page
    assert hostile not in page and "&lt;script&gt;alert(" in page
    assert 'alt="' + run["report"].gallery["negative_flips"]["shown"][0]["id"] in page
    # a result without a gallery has no section; a saved one reads back
    older = {k: v for k, v in doc.items() if k != "gallery"}  # written before the gallery
    assert "Evidence to look at" not in html.render(older)
    assert "Evidence to look at" not in html.render({**doc, "gallery": {}})
    saved = tmp_path / "result.json"
    saved.write_text(json_report.render(doc))
    assert json_report.load(saved)["gallery"] == doc["gallery"]


def test_a_saved_gallery_image_must_be_a_data_image(run, tmp_path):
    doc = json_report.to_dict(run["report"])
    doc["gallery"]["negative_flips"]["shown"][0]["data_uri"] = "javascript:alert(1)"
    saved = tmp_path / "result.json"
    saved.write_text(json_report.render(doc))
    with pytest.raises(
        InputError, match=r"gallery.negative_flips.shown\[0\].data_uri: string should match"
    ):
        json_report.load(saved)


POOL = 24  # distinct noise images the synthetic samples cycle through


@pytest.fixture(scope="module")
def noise_files(tmp_path_factory):
    """Images of uniform noise at 96 px (shrunk to MAX_SIDE), which compress worst."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(POOL):
        path = root / f"n{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _synthetic(n: int, noise_files, tmp_path, perturbations=None):
    """A finished run's pieces on `n` samples where the candidate is confidently wrong and the
    baseline right on every one, with every perturbation and a dozen near-duplicate pairs."""
    names = [f"c{k}" for k in range(10)]
    rng = np.random.default_rng(n)
    labels = np.arange(n) % 10
    ids = [f"{labels[i]}/s{i:05d}.png" for i in range(n)]
    samples = [Sample(noise_files[i % POOL], int(labels[i])) for i in range(n)]
    dataset = Dataset("synthetic", noise_files[0].parent, names, samples, ids, {})
    wrong = rng.normal(0, 1, (n, 10)).astype(np.float32)
    wrong[np.arange(n), (labels + 1) % 10] = 20
    right = np.eye(10, dtype=np.float32)[labels] * 20
    perturbations = known_names() if perturbations is None else perturbations
    arrays = {CLEAN: wrong, BASELINE: right}
    arrays.update({View(perturbation=p, severity=5): wrong for p in perturbations})
    facts = {"preprocessing": make_preprocessing(96)}
    evidence = Evidence(names, labels, ids, arrays, model_facts={"candidate": facts})
    request = EvidenceRequest(
        splits={"eval": Split(dataset, labels)},
        models={},
        views=[],
        perturb=functools.partial(perturb_view, seed=SEED),
    )
    suite = load_suite(write_suite(tmp_path / f"s{n}.yaml", tmp_path, "- {kind: near_duplicates}"))
    pairs = [{"path": ids[i], "nearest": ids[i + 1], "distance": 1} for i in range(0, 60, 2)]
    result = CheckResult("fail", "near-duplicates", details={"pairs": pairs})
    outcomes = [outcome("near_duplicates", "fail", result, family="data")]
    return suite, evidence, request, outcomes


def test_the_gallery_size_is_bounded_whatever_the_number_of_samples(noise_files, tmp_path, run):
    sizes = {}
    for n in (200, 2000):
        gallery = build_gallery(*_synthetic(n, noise_files, tmp_path))
        uris = json.dumps(gallery).count("data:image/")
        assert gallery["confident_mistakes"]["total"] == gallery["negative_flips"]["total"] == n
        assert gallery["pairs"]["total"] == 30
        assert all(len(s["shown"]) <= MAX_ITEMS for s in gallery.values())
        # the budget dropped strips rather than fail: fewer shown than the suite perturbs with
        assert 0 < len(gallery["perturbations"]["shown"]) < gallery["perturbations"]["total"]
        used = sum(gallery_module._cost(i) for s in gallery.values() for i in s["shown"])
        assert used <= BUDGET
        sizes[n] = (len(json.dumps(gallery)), uris, [len(s["shown"]) for s in gallery.values()])
        doc = {**json_report.to_dict(run["report"]), "gallery": gallery}
        assert len(html.render(doc).encode()) <= 1_000_000
    # ten times the samples, the same number of images and the same size bound
    assert sizes[200][1:] == sizes[2000][1:]
    assert max(sizes[200][0], sizes[2000][0]) <= BUDGET + 30_000


def test_pairs_of_an_unexpected_shape_are_left_out(noise_files, tmp_path):
    suite, evidence, request, outcomes = _synthetic(80, noise_files, tmp_path, perturbations=[])
    ids = evidence.sample_ids
    odd = {"pairs": [ids[0], {"path": ids[1]}, {"path": ids[2], "nearest": 7}], "groups": "x"}
    outcomes = [outcome("near_duplicates", "fail", CheckResult("fail", "odd", details=odd), "data")]
    gallery = build_gallery(suite, evidence, request, outcomes)
    assert "pairs" not in gallery and gallery["confident_mistakes"]["total"] == 80


def test_a_warm_run_reads_only_the_image_a_strip_is_chosen_from(tmp_path, data, ckpt, monkeypatch):
    checks = (
        "- {kind: corruption_accuracy, perturbations: [gaussian_noise], severities: [1], min: 0}"
    )
    suite = write_suite(tmp_path / "suite.yaml", data, checks + "\n")
    options = RunOptions(out=None, progress=False, cache_dir=tmp_path / "cache")
    run_suite(suite, ckpt, options)
    monkeypatch.setattr(qa.data_index, "SETTLE_NS", 0)
    cold = run_suite(suite, ckpt, options)  # the digest index now trusts every file
    reads: list[str] = []
    original = qa.data.read_bytes
    monkeypatch.setattr(qa.data, "read_bytes", lambda s: reads.append(s.path) or original(s))
    report = run_suite(suite, ckpt, options)
    # the engine read nothing, the gallery's pictures are kept: only the strip's image is
    # decoded, to choose it
    assert report.gallery["confident_mistakes"]["shown"]
    assert report.gallery == cold.gallery
    strip = report.gallery["perturbations"]["shown"][0]
    assert [str(p) for p in reads] == [str(data / strip["id"])]
    # without the cache folder's pictures, each mistake shown is read again, and equal
    for kept in (tmp_path / "cache").rglob("*.json"):
        if '"uris"' in kept.read_text():
            kept.unlink()
    reads.clear()
    again = run_suite(suite, ckpt, options)
    assert again.gallery == cold.gallery
    shown = again.gallery["confident_mistakes"]["shown"]
    assert {str(data / m["id"]) for m in shown} <= {str(p) for p in reads}
