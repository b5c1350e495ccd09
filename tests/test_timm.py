"""timm models (`timm/<name>`): built, gated and fine-tuned from a local cache, never downloaded.

timm's tiny `test_resnet` (0.4 M parameters, pretrained tag r160_in1k) stands in for a real
timm classifier; its "pretrained" weights are random ones the tests write into a fake Hugging
Face hub cache, in the layout huggingface_hub keeps.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import DIGITS, PREPROCESSING, SIZE, evidence_of, write_data, write_suite

from qa.architectures import build_model, spec_preprocessing
from qa.checkpoint import read_checkpoint, save_checkpoint
from qa.cli import main as qa_main
from qa.errors import InputError
from qa.evidence import CLEAN
from qa.formats import load_any
from qa.preprocess import Preprocessing, load_rgb, normalize, to_unit_tensor
from qa.suite import load_suite
from qa.timm_models import preprocessing
from trainer import timm_weights
from trainer.cli import main as trainer_main

timm = pytest.importorskip("timm")

ARCH = "timm/test_resnet"
REPO = "timm/test_resnet.r160_in1k"  # test_resnet's default pretrained tag
FAST = ["--batch-size", "8", "--workers", "0", "--image-size", "16", "--epochs", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("digits"), per_class=2)


@pytest.fixture(autouse=True)
def _own_caches(tmp_path, monkeypatch):
    """Every cache a test could read lives under its tmp_path, and nothing may download."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import huggingface_hub

    def no_download(*args, **kwargs):
        raise AssertionError("something tried to download")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    monkeypatch.setattr(huggingface_hub.file_download, "hf_hub_download", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)


def _one_error_line(text: str, *expected: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, data) -> tuple[torch.nn.Module, Path]:
    """A test_resnet fitted to the eval digits (a linear probe on its random backbone, as a
    user's own loop might), saved as a qa checkpoint: a model that tells the classes apart."""
    torch.manual_seed(3)
    module = build_model(ARCH, {"num_classes": 10}).eval()
    images, labels = _images(data)
    with torch.no_grad():
        features = module.forward_head(module.forward_features(images), pre_logits=True)
    optimiser = torch.optim.Adam(module.fc.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(module.fc(features), labels).backward()
        optimiser.step()
    path = tmp_path_factory.mktemp("timm") / "timm.pt"
    save_checkpoint(
        path,
        {
            "arch": ARCH,
            "arch_kwargs": {"num_classes": 10},
            "class_names": DIGITS,
            "preprocessing": PREPROCESSING,
            "state_dict": module.state_dict(),
        },
    )
    return module, path


def _images(data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """`data`'s images (files in sorted order) as the model sees them, with qa's preprocessing
    but without its engine, and their labels."""
    files = sorted(data.rglob("*.png"))
    unit = to_unit_tensor(PREPROCESSING)
    images = normalize(PREPROCESSING)(torch.stack([unit(load_rgb(f)) for f in files]))
    return images, torch.tensor([int(f.parent.name) for f in files])


def test_a_timm_name_builds_timm_s_model():
    model = build_model(ARCH, {"num_classes": 3})
    assert type(model).__module__.startswith("timm.")
    assert model(torch.zeros(2, 3, SIZE, SIZE)).shape == (2, 3)


@pytest.mark.parametrize(
    ("arch", "kwargs", "expected"),
    [
        ("timm/test_resnt", {}, "did you mean timm/test_resnet"),
        ("timm/test_resnet.nope", {}, "unknown pretrained tag in 'timm/test_resnet.nope'"),
        # timm's own prefixes that fetch a config from the hub or read a folder are no names
        ("timm/hf-hub:timm/test_resnet.r160_in1k", {}, "unknown architecture"),
        ("timm/local-dir:/models/mine", {}, "unknown architecture"),
        (ARCH, {"checkpoint_path": "/elsewhere.pth"}, "arch_kwargs.checkpoint_path: expected no"),
        (ARCH, {"pretrained": True}, "arch_kwargs.pretrained: expected no pretrained weights"),
        (ARCH, {"num_classes": 3, "bogus": 1}, "arch_kwargs: expected arguments timm/test_resnet"),
    ],
)
def test_bad_timm_names_and_arguments_are_one_line(arch, kwargs, expected):
    with pytest.raises(InputError) as err:
        build_model(arch, kwargs)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_without_timm_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError
    with pytest.raises(InputError, match=r"pip install 'qa\[timm\]'"):
        build_model(ARCH, {"num_classes": 3})


@pytest.mark.parametrize(
    "name", ["resnet18.a1_in1k", "test_resnet", "vit_base_patch16_224.augreg_in21k"]
)
def test_preprocessing_is_timm_s_own_eval_transform(name):
    cfg = timm.models.get_pretrained_cfg(name).to_dict()
    resize, crop, _, norm = timm.data.create_transform(
        **timm.data.resolve_data_config(pretrained_cfg=cfg)
    ).transforms
    ours = preprocessing(cfg)
    assert ours["resize"] == resize.size and [ours["crop"]] * 2 == list(crop.size)
    assert ours["interpolation"] == resize.interpolation.value
    assert ours["mean"] == pytest.approx(norm.mean.tolist())
    assert ours["std"] == pytest.approx(norm.std.tolist())


def test_the_suite_s_preprocessing_keys_win_over_timm_s(tmp_path):
    cfg = timm.models.get_pretrained_cfg("test_resnet").to_dict()
    assert spec_preprocessing(ARCH, Preprocessing()) == preprocessing(cfg)
    given = Preprocessing.model_validate({"resize": 16, "crop": 16})
    assert spec_preprocessing(ARCH, given) == {**preprocessing(cfg), "resize": 16, "crop": 16}
    # torchvision architectures keep ImageNet's defaults, as before
    assert spec_preprocessing("resnet18", Preprocessing()) == Preprocessing().model_dump()


def test_a_plain_timm_state_dict_takes_its_preprocessing_from_timm(tmp_path, data):
    torch.manual_seed(0)
    torch.save(build_model(ARCH, {"num_classes": 10}).state_dict(), tmp_path / "sd.pt")
    suite = write_suite(
        tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n", f"model: {{arch: {ARCH}}}\n"
    )
    model = load_any(tmp_path / "sd.pt", load_suite(suite).model)
    cfg = timm.models.get_pretrained_cfg("test_resnet").to_dict()
    assert model.arch == ARCH and model.class_names == DIGITS
    assert model.preprocessing == preprocessing(cfg)


def test_the_engine_runs_a_timm_checkpoint_as_timm_does(tmp_path, data, fitted):
    module, path = fitted
    suite = load_suite(write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n"))
    logits = evidence_of(suite, load_any(path), [CLEAN]).logits()
    with torch.no_grad():
        expected = module(_images(data)[0])
    assert expected.argmax(1).unique().numel() > 1  # a model that tells images apart
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("swapped", [False, True])
def test_qa_run_gates_a_timm_checkpoint(tmp_path, data, fitted, capsys, swapped):
    """The gate asks for the accuracy the model has on the true labels: met there, missed on a
    copy of the data whose 0s and 1s swapped labels."""
    module, path = fitted
    images, labels = _images(data)
    with torch.no_grad():
        predicted = module(images).argmax(1)
    eval_data = data
    if swapped:
        eval_data = Path(shutil.copytree(data, tmp_path / "data"))
        (eval_data / "0").rename(eval_data / "tmp")
        (eval_data / "1").rename(eval_data / "0")
        (eval_data / "tmp").rename(eval_data / "1")
    minimum = int((predicted == labels).sum()) / len(labels)
    checks = f"- {{kind: top1_accuracy, min: {minimum}, gate_on: point}}\n"
    suite = write_suite(tmp_path / "s.yaml", eval_data, checks)
    out = tmp_path / "r"
    args = ["run", str(suite), str(path), "--out", str(out), "--no-cache"]
    assert qa_main([*args, "--quiet"]) == int(swapped), capsys.readouterr()
    result = json.loads((out / "result.json").read_text())
    assert result["checkpoint"]["arch"] == ARCH
    if swapped:
        labels = torch.where(labels <= 1, 1 - labels, labels)
    assert result["checks"][0]["metrics"]["k"] == int((predicted == labels).sum())


def test_qa_describe_shows_the_timm_arch(fitted, capsys):
    assert qa_main(["describe", str(fitted[1])]) == 0
    arch_line = next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("arch ")
    )
    assert arch_line.split() == ["arch", ARCH]


def _cache_weights(cache: Path, revision: str = "0123abcd") -> dict:
    """Random test_resnet weights with timm's 1000-class head, placed in a hub cache the way
    huggingface_hub leaves a download: refs/main naming the snapshot that holds the file."""
    from safetensors.torch import save_file

    repo = cache / f"models--{REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    torch.manual_seed(7)
    source = build_model(ARCH).state_dict()
    save_file(source, repo / "snapshots" / revision / "model.safetensors")
    return source


@pytest.mark.slow
def test_finetune_reads_timm_weights_from_the_hub_cache(tiny_digits, tmp_path, capsys):
    source = _cache_weights(tmp_path / "hf" / "hub")
    run = tmp_path / "run"
    flags = ["--arch", ARCH, "--weights", "DEFAULT", "--freeze-backbone", *FAST]
    code = trainer_main(["finetune", "--data", str(tiny_digits), "--out", str(run), *flags])
    assert code == 0, capsys.readouterr().err
    ckpt = read_checkpoint(run / "last.pt")
    state = ckpt["state_dict"]
    assert ckpt["arch"] == ARCH and state["fc.weight"].shape[0] == 3  # a fresh 3-class head
    for key in (k for k in state if not k.startswith("fc.")):  # weights and BatchNorm stats
        assert torch.equal(state[key], source[key]), key
    init = ckpt["provenance"]["init"]
    assert init["name"] == "test_resnet.r160_in1k" and init["fresh_head"] is True
    assert init["file"].endswith("snapshots/0123abcd/model.safetensors")
    cfg = timm.models.get_pretrained_cfg("test_resnet").to_dict()
    assert ckpt["preprocessing"] == {**preprocessing(cfg), "resize": 16, "crop": 16}
    # the fine-tuned checkpoint is one qa gates
    suite = write_suite(
        tmp_path / "s.yaml", tiny_digits / "val", "- {kind: top1_accuracy, min: 0}\n"
    )
    out = ["--out", str(tmp_path / "r"), "--no-cache", "--quiet"]
    assert qa_main(["run", str(suite), str(run / "best.pt"), *out]) == 0


@pytest.mark.parametrize("where", ["HF_HOME", "HF_HUB_CACHE"])
def test_missing_timm_weights_say_which_file_goes_where(
    tiny_digits, tmp_path, capsys, monkeypatch, where
):
    if where == "HF_HUB_CACHE":
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    cache = tmp_path / ("hf/hub" if where == "HF_HOME" else "elsewhere")
    flags = ["--arch", ARCH, "--weights", "r160_in1k", *FAST]
    code = trainer_main(
        ["finetune", "--data", str(tiny_digits), "--out", str(tmp_path / "r"), *flags]
    )
    assert code == 2
    place = cache / "models--timm--test_resnet.r160_in1k/snapshots/main/model.safetensors"
    url = f"https://huggingface.co/{REPO}/resolve/main/model.safetensors"
    _one_error_line(capsys.readouterr().err, f"{place} not found", url, "never downloads")


def test_a_file_placed_where_the_message_says_is_found(tmp_path):
    cfg = timm.models.get_pretrained_cfg("test_resnet").to_dict()
    _, _, place = timm_weights.weights_file(cfg)
    place.parent.mkdir(parents=True)
    place.write_bytes(b"")
    assert timm_weights.weights_file(cfg)[0] == place


def test_weights_of_a_url_only_config_are_read_from_torch_hub_s_cache(tmp_path):
    cfg = {"url": "https://example.org/weights/net-1234.pth"}
    found, url, place = timm_weights.weights_file(cfg)
    assert found is None and url == cfg["url"]
    assert place == tmp_path / "torch" / "hub" / "checkpoints" / "net-1234.pth"


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ("nope", "unknown pretrained tag in 'timm/test_resnet.nope' (expected one of r160_in1k)"),
        ("resnet18.a1_in1k", "belongs to another architecture than timm/test_resnet"),
    ],
)
def test_bad_timm_weights_are_one_line(tiny_digits, tmp_path, capsys, weights, expected):
    flags = ["--arch", ARCH, "--weights", weights, *FAST]
    code = trainer_main(
        ["finetune", "--data", str(tiny_digits), "--out", str(tmp_path / "r"), *flags]
    )
    assert code == 2
    _one_error_line(capsys.readouterr().err, expected)


def test_unreadable_cached_safetensors_are_one_line(tiny_digits, tmp_path, capsys):
    cfg = timm.models.get_pretrained_cfg("test_resnet").to_dict()
    place = timm_weights.weights_file(cfg)[2]
    place.parent.mkdir(parents=True)
    place.write_bytes(b"not safetensors")
    flags = ["--arch", ARCH, "--weights", "DEFAULT", *FAST]
    code = trainer_main(
        ["finetune", "--data", str(tiny_digits), "--out", str(tmp_path / "r"), *flags]
    )
    assert code == 2
    _one_error_line(capsys.readouterr().err, str(place), "not a readable safetensors file")
