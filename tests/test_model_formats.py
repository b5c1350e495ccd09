"""Every checkpoint format qa accepts, and the ones it refuses."""

import hashlib

import numpy as np
import pytest
import torch
from helpers import (
    DIGITS,
    SIZE,
    SPEC,
    evidence_of,
    save_tiny,
    tiny_module,
    write_data,
    write_suite,
)

from qa.cli import main
from qa.errors import InputError, UntrustedCheckpointError
from qa.evidence import CLEAN
from qa.formats import load_any
from qa.suite import load_suite
from qa.torchfile import archive_kind


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    """The eval logits of the seed-5 resnet18, loaded from our own format."""
    path = save_tiny(tmp_path_factory.mktemp("ref") / "ref.pt", seed=5)
    suite = load_suite(
        write_suite(path.parent / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n")
    )
    return evidence_of(suite, load_any(path), [CLEAN]).logits()


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _logits(tmp_path, data, path, head=SPEC, trust=False):
    suite = load_suite(
        write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n", head)
    )
    model = load_any(path, suite.model, trust)
    return model, evidence_of(suite, model, [CLEAN]).logits()


def _hand_trained(data) -> torch.nn.Module:
    """What a user's own loop produces: a linear probe on a frozen backbone, plain Adam steps."""
    from PIL import Image

    torch.manual_seed(0)
    files = sorted(data.rglob("*.png"))
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    images = torch.tensor((pixels - mean) / std, dtype=torch.float32).permute(0, 3, 1, 2)
    targets = torch.tensor([int(f.parent.name) for f in files])
    model = tiny_module(seed=0)
    head, model.fc = model.fc, torch.nn.Identity()
    with torch.no_grad():
        features = model(images)
    optimiser = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(head(features), targets).backward()
        optimiser.step()
    model.fc = head
    return model.eval()


def test_a_hand_trained_state_dict_is_gated_through_the_suites_architecture(tmp_path, data, capsys):
    torch.save(_hand_trained(data).state_dict(), tmp_path / "mine.pt")
    checks = "- {kind: top1_accuracy, min: 0.9, gate_on: point}\n"
    suite = write_suite(tmp_path / "s.yaml", data, checks, SPEC)
    code = main(
        [
            "run",
            str(suite),
            str(tmp_path / "mine.pt"),
            "--out",
            str(tmp_path / "r"),
            "--no-cache",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr()
    no_spec = write_suite(tmp_path / "bare.yaml", data, checks)
    out = ["--out", str(tmp_path / "r")]  # where the error report goes
    assert (
        main(["run", str(no_spec), str(tmp_path / "mine.pt"), "--no-cache", "--quiet", *out]) == 2
    )
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "add `model: {arch: NAME, arch_kwargs: {num_classes: N}}`" in err
    )


def test_a_state_dict_saved_from_ddp_and_without_num_classes_loads(tmp_path, data, reference):
    state = {f"module.{k}": v for k, v in tiny_module(seed=5).state_dict().items()}
    torch.save({"epoch": 3, "model_state_dict": state}, tmp_path / "ddp.pt")
    head = f"model: {{arch: resnet18, preprocessing: {{resize: {SIZE}, crop: {SIZE}}}}}\n"
    model, logits = _logits(tmp_path, data, tmp_path / "ddp.pt", head)
    assert model.class_names == DIGITS and model.provenance == {"format": "state_dict"}
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5)


def test_weights_for_another_architecture_are_one_line(tmp_path, data):
    torch.save(tiny_module(seed=5).state_dict(), tmp_path / "sd.pt")
    head = SPEC.replace("resnet18", "resnet34")
    with pytest.raises(InputError, match=r"sd\.pt: weights do not fit resnet34") as err:
        _logits(tmp_path, data, tmp_path / "sd.pt", head)
    assert "\n" not in str(err.value)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_trusted_torchscript_takes_names_and_preprocessing_from_the_suite(
    tmp_path, data, reference
):
    scripted = torch.jit.script(tiny_module(seed=5))
    torch.jit.save(scripted, tmp_path / "model.ts")
    assert archive_kind((tmp_path / "model.ts").read_bytes()) == "torchscript"
    model, logits = _logits(tmp_path, data, tmp_path / "model.ts", trust=True)
    assert model.digest == _sha256(tmp_path / "model.ts")
    assert model.provenance == {"format": "torchscript"}
    np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="does not name its classes; add `model:"):
        load_any(tmp_path / "model.ts", trust=True)


def test_trusted_torch_export_archives_load(tmp_path, data, reference):
    batch = torch.export.Dim("batch", min=1)
    example = (torch.zeros(2, 3, SIZE, SIZE),)
    program = torch.export.export(tiny_module(seed=5), example, dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "model.pt2")
    assert archive_kind((tmp_path / "model.pt2").read_bytes()) == "export"
    model, logits = _logits(tmp_path, data, tmp_path / "model.pt2", trust=True)
    assert model.digest == _sha256(tmp_path / "model.pt2")
    np.testing.assert_allclose(logits, reference, rtol=1e-4, atol=1e-4)


def test_a_pickled_module_is_refused_unless_trusted(tmp_path, data, reference, capsys):
    torch.save(tiny_module(seed=5), tmp_path / "whole.pt")
    with pytest.raises(UntrustedCheckpointError, match="--trust-checkpoint"):
        load_any(tmp_path / "whole.pt")
    suite = write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n", SPEC)
    out = ["--out", str(tmp_path / "r")]  # where the error report goes
    assert main(["run", str(suite), str(tmp_path / "whole.pt"), "--no-cache", "--quiet", *out]) == 2
    assert "refusing to load" in capsys.readouterr().err
    _, logits = _logits(tmp_path, data, tmp_path / "whole.pt", trust=True)
    np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"definitely not torch", "not a readable torch checkpoint"),
        (None, "checkpoint not found"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path, content, expected):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=expected):
        load_any(path)


def test_a_dict_of_other_things_names_what_was_found(tmp_path):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "odd.pt")
    with pytest.raises(InputError, match=r"expected a qa checkpoint, a state_dict.*found a dict"):
        load_any(tmp_path / "odd.pt")


def test_our_format_keeps_its_digest_and_provenance(tmp_path):
    path = save_tiny(tmp_path / "c.pt", seed=1, temperature=1.5)
    model = load_any(path)
    assert model.digest == _sha256(path) and model.temperature == 1.5
    assert model.provenance == {"config": {"seed": 1}}
