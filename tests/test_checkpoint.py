"""The checkpoint format round-trips exactly, validates its metadata, never executes code from
a file, and is identified by the digest of exactly the bytes that were loaded."""

import hashlib
import os
import shutil

import numpy as np
import pytest
import torch
import yaml
from helpers import DIGITS, SIZE, evidence_of, save_tiny, tiny_module, write_data, write_suite

from qa.architectures import build_model, model_from_checkpoint
from qa.checkpoint import describe, load_model, read_checkpoint, save_checkpoint
from qa.cli import main
from qa.errors import InputError, UntrustedCheckpointError
from qa.evidence import CLEAN
from qa.formats import load_any
from qa.preprocess import load_rgb, make_preprocessing, to_unit_tensor
from qa.suite import load_suite
from qa.torchfile import load_torch_file
from trainer.init import load_init


class _RunsCode:
    """Unpickling this calls os.mkdir(marker): the side effect a malicious file would have."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _checkpoint(module: torch.nn.Module) -> dict:
    return {
        "arch": "resnet18",
        "arch_kwargs": {"num_classes": 3},
        "class_names": ["a", "b", "c"],
        "preprocessing": make_preprocessing(16),
        "state_dict": module.state_dict(),
        "provenance": {"note": "test"},
    }


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("digits"), per_class=1)


@pytest.fixture(scope="module")
def good() -> dict:
    """A valid checkpoint as the dict torch.save writes (no validation on the way)."""
    return {
        "format": "qa-checkpoint",
        "format_version": 1,
        "arch": "resnet18",
        "arch_kwargs": {"num_classes": 10},
        "class_names": DIGITS,
        "preprocessing": make_preprocessing(SIZE),
        "state_dict": tiny_module(seed=0).state_dict(),
        "provenance": {},
    }


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    module = build_model("resnet18", {"num_classes": 3})
    module.train()
    module(torch.randn(8, 3, 16, 16))  # move BatchNorm statistics off their defaults
    module.eval()
    save_checkpoint(tmp_path / "m.pt", _checkpoint(module))

    ckpt = read_checkpoint(tmp_path / "m.pt")
    rebuilt = model_from_checkpoint(ckpt, tmp_path / "m.pt")
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(module(x), rebuilt(x))
    assert ckpt["class_names"] == ["a", "b", "c"]
    assert ckpt["format_version"] == 1
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic writer left nothing behind


@pytest.mark.parametrize("reader", [read_checkpoint, load_torch_file])
def test_a_pickle_that_runs_code_is_refused_and_not_run(tmp_path, reader):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "qa-checkpoint", "payload": _RunsCode(str(marker))}, path)

    with pytest.raises(UntrustedCheckpointError, match="refusing to load"):
        reader(path)
    assert not marker.exists()


def test_a_foreign_torch_file_is_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="expected a qa checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip archive")
    with pytest.raises(InputError, match="not a readable torch checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")


def _set(**values):
    return lambda ckpt: {**ckpt, **values}


def _pre(**values):
    return lambda ckpt: {**ckpt, "preprocessing": {**ckpt["preprocessing"], **values}}


def _without(key, inside=None):
    def change(ckpt):
        if inside is None:
            return {k: v for k, v in ckpt.items() if k != key}
        return {**ckpt, inside: {k: v for k, v in ckpt[inside].items() if k != key}}

    return change


def _integer_weight(ckpt):
    state = {**ckpt["state_dict"], "conv1.weight": ckpt["state_dict"]["conv1.weight"].long()}
    return {**ckpt, "state_dict": state}


NAN, INF = float("nan"), float("inf")
BAD_METADATA = {
    "pretrained weights": (
        _set(arch_kwargs={"num_classes": 10, "weights": "DEFAULT"}),
        "arch_kwargs.weights: expected no pretrained weights",
    ),
    "a keyword resnet18 rejects": (
        _set(arch_kwargs={"num_classes": 10, "norm_layer": "batch"}),
        "arch_kwargs: expected arguments resnet18 accepts, found",
    ),
    "version as text": (_set(format_version="9"), "format_version: expected an integer, found '9'"),
    "newer version": (_set(format_version=2), "checkpoint format version 2 is newer"),
    "crop 0": (_pre(crop=0), "preprocessing.crop: expected a number >= 1, found 0"),
    "std 0": (_pre(std=0), "preprocessing.std: expected a list, found 0"),
    "a zero in std": (_pre(std=[0.2, 0.0, 0.2]), "preprocessing.std[1]: expected a number > 0"),
    "empty preprocessing": (
        _set(preprocessing={}),
        "preprocessing: expected every key of resize, crop, mean, std, interpolation, "
        "found no resize, crop, mean, std, interpolation",
    ),
    "no std": (_without("std", inside="preprocessing"), "preprocessing: expected every key"),
    "text in mean": (_pre(mean=["a", 0.5, 0.5]), "preprocessing.mean[0]: expected a number"),
    "nan in mean": (_pre(mean=[NAN, 0.5, 0.5]), "preprocessing.mean[0]: expected a finite number"),
    "unknown interpolation": (
        _pre(interpolation="lanczos"),
        "preprocessing.interpolation: expected 'bilinear', 'bicubic' or 'nearest'",
    ),
    "zero temperature": (_set(temperature=0.0), "temperature: expected a number > 0, found 0.0"),
    "negative temperature": (_set(temperature=-1.0), "temperature: expected a number > 0"),
    "nan temperature": (_set(temperature=NAN), "temperature: expected a finite number, found nan"),
    "inf temperature": (_set(temperature=INF), "temperature: expected a finite number, found inf"),
    "no class names": (_set(class_names=[]), "class_names: expected at least 1 item(s)"),
    "names as one text": (_set(class_names="0123456789"), "class_names: expected a list"),
    "repeated names": (
        _set(class_names=["0", "0", *DIGITS[2:]]),
        "class_names: expected distinct class names, found ['0'] more than once",
    ),
    "numbers as names": (_set(class_names=list(range(10))), "class_names[0]: expected a string"),
    "fewer names than outputs": (
        _set(class_names=DIGITS[:9]),
        "class_names: expected 10 names (one per output of fc), found 9",
    ),
    "no weights": (_without("state_dict"), "state_dict: missing required key"),
    "misspelt key": (
        _set(temprature=2.0),
        "temprature: unknown key 'temprature'; did you mean temperature?",
    ),
    "unknown architecture": (_set(arch="resnet99"), "unknown architecture 'resnet99'"),
    "integer weights": (
        _integer_weight,
        "state_dict.conv1.weight: expected a torch.float32 tensor, found torch.int64",
    ),
}


@pytest.mark.parametrize("case", BAD_METADATA)
def test_bad_metadata_is_one_line_naming_file_and_key_and_exit_2(
    tmp_path, data, good, capsys, case
):
    change, expected = BAD_METADATA[case]
    path = tmp_path / "bad.pt"
    torch.save(change(good), path)
    suite = write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n")
    code = main(["run", str(suite), str(path), "--no-cache", "--quiet", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {path}: {expected}"), err


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"crop": 0}, "crop: expected a number >= 1, found 0"),
        ({"std": [0.2, 0.0, 0.2]}, "std[1]: expected a number > 0, found 0.0"),
        ({"mean": [NAN, 0.5, 0.5]}, "mean[0]: expected a finite number, found nan"),
        ({"std": [0.2, INF, 0.2]}, "std[1]: expected a finite number, found inf"),
    ],
)
def test_suite_and_checkpoint_preprocessing_are_validated_alike(
    tmp_path, data, good, values, expected
):
    torch.save(_pre(**values)(good), tmp_path / "c.pt")
    with pytest.raises(InputError) as from_checkpoint:
        read_checkpoint(tmp_path / "c.pt")
    head = yaml.safe_dump({"model": {"arch": "resnet18", "preprocessing": values}})
    suite = write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n", head)
    with pytest.raises(InputError) as from_suite:
        load_suite(suite)
    assert f": preprocessing.{expected}" in str(from_checkpoint.value)
    # the suite quotes the number as written (.nan, .inf); the rule and the message are the same
    written = expected.replace("found nan", "found .nan").replace("found inf", "found .inf")
    assert f": model.preprocessing.{written}" in str(from_suite.value)


def test_invalid_metadata_is_never_written(tmp_path):
    ckpt = {**_checkpoint(tiny_module(num_classes=3)), "temperature": NAN}
    with pytest.raises(InputError, match="temperature: expected a finite number"):
        save_checkpoint(tmp_path / "m.pt", ckpt)
    assert not list(tmp_path.iterdir())


@pytest.fixture
def swapped(tmp_path, monkeypatch):
    """last.pt holds checkpoint A; torch.load, right after it reads, replaces it with B."""
    a = save_tiny(tmp_path / "a.pt", seed=1)
    b = save_tiny(tmp_path / "b.pt", seed=2)
    path = tmp_path / "last.pt"
    shutil.copy(a, path)
    real_load = torch.load

    def load_then_replace(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        if b.exists():
            os.replace(b, path)  # what the trainer does to last.pt every epoch
        return loaded

    monkeypatch.setattr(torch, "load", load_then_replace)
    return path, a


def _weights_of(path) -> torch.Tensor:
    return torch.load(path, weights_only=True)["state_dict"]["fc.weight"]


@pytest.mark.parametrize("loader", [load_any, load_model])
def test_the_digest_is_of_the_bytes_that_were_loaded(swapped, loader):
    path, a = swapped
    model = loader(path)
    assert model.digest == _sha256(a) != _sha256(path)
    assert torch.equal(model.module.fc.weight, _weights_of(a))


def test_describe_reports_the_digest_of_the_bytes_it_read(swapped):
    path, a = swapped
    info = describe(path)
    assert info["sha256"] == _sha256(a) != _sha256(path)
    assert info["provenance"] == {"config": {"seed": 1}}


def test_trainer_init_records_the_digest_of_the_bytes_it_read(swapped):
    path, a = swapped
    state, origin = load_init(str(path))
    assert origin["sha256"] == _sha256(a) != _sha256(path)
    assert torch.equal(state["fc.weight"], _weights_of(a))


def test_trainer_init_reads_a_state_dict_saved_from_ddp_under_the_bare_names(tmp_path):
    state = tiny_module(seed=2).state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pt")
    loaded, origin = load_init(str(tmp_path / "ddp.pt"))
    assert origin["kind"] == "state_dict" and list(loaded) == list(state)
    assert torch.equal(loaded["fc.weight"], state["fc.weight"])


def test_a_checkpoint_replaced_while_loading_never_poisons_the_cache(
    tmp_path, data, swapped, monkeypatch
):
    path, _ = swapped
    suite = load_suite(write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n"))
    cache = tmp_path / "cache"
    evidence_of(suite, load_any(path), [CLEAN], cache_dir=cache)
    monkeypatch.undo()  # path now holds B for good
    b = load_any(path)
    cached = evidence_of(suite, b, [CLEAN], cache_dir=cache).logits()
    fresh = evidence_of(suite, b, [CLEAN]).logits()
    np.testing.assert_array_equal(cached, fresh)


def test_half_precision_weights_load_in_the_architectures_dtype(tmp_path):
    path = save_tiny(tmp_path / "half.pt", module=tiny_module(seed=3).half())
    model = load_model(path)
    assert model.module.fc.weight.dtype == torch.float32
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = tiny_module(seed=3).half().float()(x)
        np.testing.assert_array_equal(model.module(x).numpy(), expected.numpy())


def test_the_recorded_interpolation_is_the_one_used(data):
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    image = load_rgb(next(data.rglob("*.png")))
    recorded = {**make_preprocessing(8, resize=9), "interpolation": "nearest"}
    resized = F.resize(F.to_image(image), 9, interpolation=InterpolationMode.NEAREST)
    expected = F.to_dtype(F.center_crop(resized, 8), torch.float32, scale=True)
    assert torch.equal(to_unit_tensor(recorded)(image), expected)
    assert not torch.equal(to_unit_tensor(make_preprocessing(8, resize=9))(image), expected)
