"""Every unusable input to `trainer` is one `error:` line and exit 2, never a traceback."""

import os
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from qa.architectures import build_model
from qa.checkpoint import save_checkpoint
from qa.preprocess import make_preprocessing
from trainer import finetune as finetune_module
from trainer.checkpoint import TRAIN_STATE_KEYS
from trainer.cli import main
from trainer.config import TrainConfig, flag_type

FLOAT_FLAGS = [
    "--" + f.name.replace("_", "-") for f in fields(TrainConfig) if flag_type(f) is float
]

FAST = ["--batch-size", "8", "--workers", "0", "--epochs", "1", "--image-size", "16"]


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _one_error_line(capsys, *expected: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def _finetune(data: Path, out: Path, *extra: str) -> int:
    return main(["finetune", "--data", str(data), "--out", str(out), *FAST, *extra])


def test_missing_data_folder(tmp_path, capsys):
    assert _finetune(tmp_path / "nowhere", tmp_path / "run") == 2
    _one_error_line(capsys, "nowhere", "not found")


@pytest.mark.parametrize("split", ["train", "val"])
def test_missing_split(tiny_digits, tmp_path, capsys, split):
    (tiny_digits / split).rename(tiny_digits / f"old-{split}")
    assert _finetune(tiny_digits, tmp_path / "run") == 2
    _one_error_line(capsys, f"no {split}/ folder")


def test_class_folder_without_images(tiny_digits, tmp_path, capsys):
    (tiny_digits / "train" / "7").mkdir()
    assert _finetune(tiny_digits, tmp_path / "run") == 2
    _one_error_line(capsys, str(tiny_digits / "train" / "7"), "no images")


def test_val_classes_differ_from_train(tiny_digits, tmp_path, capsys):
    (tiny_digits / "val" / "2").rename(tiny_digits / "val" / "9")
    assert _finetune(tiny_digits, tmp_path / "run") == 2
    _one_error_line(capsys, "differ")


@pytest.mark.parametrize("split", ["train", "val"])
def test_undecodable_image_is_named(tiny_digits, tmp_path, capsys, split):
    bad = next((tiny_digits / split / "1").iterdir())
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert _finetune(tiny_digits, tmp_path / "run") == 2
    _one_error_line(capsys, str(bad), "not a readable image")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_unknown_architecture_suggests_near_names(tiny_digits, tmp_path, capsys):
    assert _finetune(tiny_digits, tmp_path / "run", "--arch", "resnet81") == 2
    _one_error_line(capsys, "resnet81", "did you mean", "resnet18")


def test_missing_cached_weights_say_which_file_goes_where(
    tiny_digits, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    args = ("--weights", "ResNet18_Weights.IMAGENET1K_V1")
    assert _finetune(tiny_digits, tmp_path / "run", *args) == 2
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    _one_error_line(capsys, str(expected), "https://download.pytorch.org/models/resnet18-f37072fd")


def test_weights_of_another_architecture(tiny_digits, tmp_path, capsys):
    assert _finetune(tiny_digits, tmp_path / "run", "--weights", "ResNet50_Weights.DEFAULT") == 2
    _one_error_line(capsys, "ResNet50_Weights.DEFAULT")


def test_init_with_a_misshapen_backbone_tensor(tiny_digits, tmp_path, capsys):
    state = build_model("resnet18", {"num_classes": 3}).state_dict()
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    torch.save(state, tmp_path / "grey.pt")
    assert _finetune(tiny_digits, tmp_path / "run", "--init", str(tmp_path / "grey.pt")) == 2
    _one_error_line(capsys, "conv1.weight", "(64, 1, 7, 7)", "(64, 3, 7, 7)")


def test_init_from_an_unsafe_pickle_is_refused_and_not_run(tiny_digits, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    torch.save({"conv1.weight": _RunsCode(str(marker))}, tmp_path / "evil.pt")
    assert _finetune(tiny_digits, tmp_path / "run", "--init", str(tmp_path / "evil.pt")) == 2
    _one_error_line(capsys, "evil.pt", "refusing")
    assert not marker.exists()


def _qa_checkpoint(path: Path, class_names: list[str], train_state: bool) -> None:
    ckpt = {
        "arch": "resnet18",
        "arch_kwargs": {"num_classes": len(class_names)},
        "class_names": class_names,
        "preprocessing": make_preprocessing(16),
        "state_dict": build_model("resnet18", {"num_classes": len(class_names)}).state_dict(),
    }
    if train_state:
        ckpt["provenance"] = {"config": {"data": "elsewhere", "out": str(path.parent)}}
        ckpt["train_state"] = {key: {} for key in TRAIN_STATE_KEYS}
    save_checkpoint(path, ckpt)


def _truncated_train_state(path: Path) -> None:
    _qa_checkpoint(path, ["0", "1", "2"], train_state=True)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["train_state"]["rng"]
    torch.save(ckpt, path)


def test_resume_with_a_state_that_does_not_fit(tiny_digits, tmp_path, capsys):
    _qa_checkpoint(tmp_path / "last.pt", ["0", "1", "2"], train_state=True)
    args = ["--resume", str(tmp_path / "last.pt"), "--data", str(tiny_digits)]
    assert main(["finetune", *args]) == 2
    _one_error_line(capsys, "training state does not fit this run")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(os.urandom(256)), "not a readable torch checkpoint"),
        (lambda p: torch.save({"weights": torch.zeros(1)}, p), "expected a qa checkpoint"),
        (lambda p: _qa_checkpoint(p, ["0", "1", "2"], train_state=False), "no training state"),
        (lambda p: _truncated_train_state(p), "lacks ['rng']"),
    ],
    ids=["corrupt", "foreign", "not-resumable", "incomplete"],
)
def test_resume_from_an_unusable_file(tmp_path, capsys, make, expected):
    make(tmp_path / "last.pt")
    assert main(["finetune", "--resume", str(tmp_path / "last.pt")]) == 2
    _one_error_line(capsys, str(tmp_path / "last.pt"), expected)


def test_resume_with_other_classes(tiny_digits, tmp_path, capsys):
    _qa_checkpoint(tmp_path / "last.pt", ["a", "b"], train_state=True)
    args = ["--resume", str(tmp_path / "last.pt"), "--data", str(tiny_digits)]
    assert main(["finetune", *args]) == 2
    _one_error_line(capsys, "classes", "['a', 'b']")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--augment", "crop,rotate"], "--augment"),
        (["--metric", "f1"], "--metric"),
        (["--lr", "fast"], "--lr"),
        (["--init", "a.pt", "--weights", "DEFAULT"], "either --weights or --init"),
    ],
)
def test_bad_flags(tiny_digits, tmp_path, capsys, flags, expected):
    assert _finetune(tiny_digits, tmp_path / "run", *flags) == 2
    _one_error_line(capsys, expected)


def test_every_float_option_is_covered():
    assert {"--lr", "--backbone-lr", "--weight-decay", "--warmup-epochs"} <= set(FLOAT_FLAGS)
    assert {"--label-smoothing", "--grad-clip", "--target-accuracy"} <= set(FLOAT_FLAGS)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("flag", FLOAT_FLAGS)
def test_non_finite_numbers_are_refused(tiny_digits_source, tmp_path, capsys, flag, value):
    assert _finetune(tiny_digits_source, tmp_path / "run", f"{flag}={value}") == 2
    line = _one_error_line(capsys, f"{flag}: expected a finite number")
    assert line.endswith(f"found {float(value)}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--label-smoothing", "1", ">= 0 and < 1, found 1.0"),
        ("--target-accuracy", "1.5", ">= 0 and <= 1, found 1.5"),
        ("--target-accuracy", "-0.1", ">= 0 and <= 1, found -0.1"),
        ("--warmup-epochs", "-1", ">= 0, found -1.0"),
        ("--grad-clip", "-0.5", ">= 0, found -0.5"),
        ("--backbone-lr", "0", "> 0, found 0.0"),
        ("--seed", "-1", "a whole number >= 0 and < 9223372036854775808, found -1"),
        ("--seed", str(2**64), "found 18446744073709551616"),
    ],
)
def test_out_of_range_numbers_are_refused(
    tiny_digits_source, tmp_path, capsys, flag, value, expected
):
    assert _finetune(tiny_digits_source, tmp_path / "run", f"{flag}={value}") == 2
    _one_error_line(capsys, f"{flag}: expected", expected)


def test_a_resumed_config_with_a_non_finite_number_is_refused(tiny_digits, tmp_path, capsys):
    _qa_checkpoint(tmp_path / "last.pt", ["0", "1", "2"], train_state=True)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    ckpt["provenance"]["config"]["lr"] = float("nan")
    torch.save(ckpt, tmp_path / "last.pt")
    args = ["--resume", str(tmp_path / "last.pt"), "--data", str(tiny_digits)]
    assert main(["finetune", *args]) == 2
    _one_error_line(capsys, "--lr: expected a finite number > 0, found nan")


def _must_not_train(*args, **kwargs):
    raise AssertionError("training started although --out is unusable")


def test_out_that_is_a_file_is_refused_before_training(tiny_digits, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(finetune_module, "prepare", _must_not_train)
    (tmp_path / "run").write_text("not a folder")
    assert _finetune(tiny_digits, tmp_path / "run") == 2
    _one_error_line(capsys, f"--out {tmp_path / 'run'}: expected a folder, found a file")
    assert _finetune(tiny_digits, tmp_path / "run" / "sub") == 2
    _one_error_line(
        capsys, f"--out {tmp_path / 'run' / 'sub'}: expected a folder at {tmp_path / 'run'}"
    )


def test_out_with_a_folder_where_a_run_file_goes(tiny_digits, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(finetune_module, "prepare", _must_not_train)
    (tmp_path / "run" / "last.pt").mkdir(parents=True)
    assert _finetune(tiny_digits, tmp_path / "run") == 2
    _one_error_line(capsys, "expected last.pt to be a file, found a folder")


def test_out_that_cannot_be_written_is_refused(tiny_digits, tmp_path, capsys, monkeypatch):
    # Root may write anywhere, so a read-only folder is simulated where the check looks.
    monkeypatch.setattr(finetune_module, "prepare", _must_not_train)
    real_access = os.access
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    assert _finetune(tiny_digits, locked) == 2
    _one_error_line(capsys, f"--out {locked}: expected a writable folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_out_in_a_read_only_folder_for_real(tiny_digits, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(finetune_module, "prepare", _must_not_train)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert _finetune(tiny_digits, locked / "run") == 2
    _one_error_line(capsys, f"--out {locked / 'run'}: expected a writable folder")
    assert _finetune(tiny_digits, locked) == 2
    _one_error_line(capsys, f"--out {locked}: expected a writable folder")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_asked_for_without_a_gpu(tiny_digits, tmp_path, capsys):
    assert _finetune(tiny_digits, tmp_path / "run", "--device", "cuda") == 2
    _one_error_line(capsys, "--device cuda")


def test_finetune_needs_data_and_out(capsys):
    assert main(["finetune", "--epochs", "1"]) == 2
    _one_error_line(capsys, "--data and --out are required")


def test_data_digits_writes_and_counts(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["data", "digits", "--out", str(out), "--size", "8", "--classes", "0-1"]) == 0
    assert "train 251" in capsys.readouterr().out
    assert {p.name for p in (out / "train").iterdir()} == {"0", "1"}
    assert main(["data", "digits", "--out", str(out), "--classes", "x"]) == 2
    _one_error_line(capsys, "--classes")
