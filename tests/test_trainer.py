"""The trainer end to end on tiny real digits: determinism, resume, init, freezing, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qa.architectures import build_model
from qa.checkpoint import describe, read_checkpoint, save_checkpoint
from qa.data import fingerprint_contains, sha256_bytes
from qa.preprocess import IMAGENET_MEAN, make_preprocessing
from trainer import finetune as finetune_module
from trainer.cli import main

pytestmark = pytest.mark.slow
FAST = ["--batch-size", "8", "--workers", "0", "--image-size", "16"]
TIMING = ("images_per_s", "seconds")


def _finetune(data: Path, out: Path, *extra: str) -> int:
    return main(["finetune", "--data", str(data), "--out", str(out), *FAST, *extra])


def _metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if torch.is_tensor(a[key]):
            assert torch.equal(a[key], b[key]), key
        elif isinstance(a[key], dict):
            _assert_same_tensors(a[key], b[key])
        else:
            assert a[key] == b[key], key


def test_seeded_runs_are_bit_for_bit_identical(tiny_digits, tmp_path):
    # One loader worker: the augmentations run in a worker seeded from (seed, epoch).
    args = ("--epochs", "2", "--augment", "crop,flip", "--workers", "1")
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert _finetune(tiny_digits, tmp_path / name, *args, "--seed", seed) == 0
    a, b, c = (read_checkpoint(tmp_path / n / "last.pt") for n in "abc")
    _assert_same_tensors(a["state_dict"], b["state_dict"])
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    assert not torch.equal(a["state_dict"]["fc.weight"], c["state_dict"]["fc.weight"])


def test_resume_after_ctrl_c_equals_the_straight_run(tiny_digits, tmp_path, monkeypatch, capsys):
    args = ("--epochs", "4", "--augment", "crop,flip", "--warmup-epochs", "1")
    assert _finetune(tiny_digits, tmp_path / "straight", *args) == 0

    calls = []
    real_train_epoch = finetune_module.train_epoch

    def interrupted_in_epoch_3(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_train_epoch(*a, **k)

    monkeypatch.setattr(finetune_module, "train_epoch", interrupted_in_epoch_3)
    capsys.readouterr()
    assert _finetune(tiny_digits, tmp_path / "resumed", *args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted during epoch 3" in err[0] and "epoch 2" in err[0]
    survived = read_checkpoint(tmp_path / "resumed" / "last.pt")
    assert survived["train_state"]["epoch"] == 2
    assert len(_metrics(tmp_path / "resumed")) == 2

    monkeypatch.setattr(finetune_module, "train_epoch", real_train_epoch)
    assert main(["finetune", "--resume", str(tmp_path / "resumed" / "last.pt")]) == 0
    straight = read_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = read_checkpoint(tmp_path / "resumed" / "last.pt")
    _assert_same_tensors(straight["state_dict"], resumed["state_dict"])
    _assert_same_tensors(
        straight["train_state"]["optimizer"]["state"], resumed["train_state"]["optimizer"]["state"]
    )
    assert _metrics(tmp_path / "straight") == _metrics(tmp_path / "resumed")


def test_checkpoint_records_what_qa_needs(tiny_digits, tmp_path, capsys):
    args = ("--epochs", "2", "--augment", "none", "--grad-clip", "1", "--label-smoothing", "0.1")
    assert _finetune(tiny_digits, tmp_path / "run", *args, "--metric", "val_loss") == 0
    stdout = capsys.readouterr().out
    assert stdout.count("epoch 1/2") == 1 and stdout.count("epoch 2/2") == 1
    ckpt = read_checkpoint(tmp_path / "run" / "best.pt")  # weights_only: plain data only
    assert ckpt["arch"] == "resnet18" and ckpt["arch_kwargs"] == {"num_classes": 3}
    assert ckpt["class_names"] == ["0", "1", "2"]
    prov = ckpt["provenance"]
    assert prov["config"]["epochs"] == 2 and prov["config"]["augment"] == "none"
    assert set(prov["versions"]) == {"python", "torch", "torchvision", "qa"}
    assert prov["init"] == {"kind": "scratch"}
    assert prov["metrics"]["best"]["metric"] == "val_loss"
    assert prov["config"]["grad_clip"] == 1.0
    assert prov["created"].endswith("+00:00")
    train_file = next((tiny_digits / "train" / "1").iterdir())
    val_file = next((tiny_digits / "val" / "1").iterdir())
    fp = prov["data_fingerprint"]
    assert fp["n_files"] == 24
    assert fingerprint_contains(fp, sha256_bytes(train_file.read_bytes()))
    assert not fingerprint_contains(fp, sha256_bytes(val_file.read_bytes()))
    # Mean/std come from the (grey) training images: equal across channels, not ImageNet's.
    mean = ckpt["preprocessing"]["mean"]
    assert mean[0] == pytest.approx(mean[2]) and mean != list(IMAGENET_MEAN)
    assert ckpt["preprocessing"]["crop"] == 16
    assert prov["metrics"]["best"]["epoch"] in (1, 2)
    assert main(["describe", str(tmp_path / "run" / "best.pt")]) == 0
    assert "resnet18" in capsys.readouterr().out


def test_best_pt_holds_what_ships_and_last_pt_what_resumes(tiny_digits, tmp_path, capsys):
    run = tmp_path / "run"
    assert _finetune(tiny_digits, run, "--epochs", "1") == 0
    best, last = read_checkpoint(run / "best.pt"), read_checkpoint(run / "last.pt")
    assert "train_state" not in best and last["train_state"]["optimizer"]["state"]
    assert best.keys() == last.keys() - {"train_state"}
    _assert_same_tensors(best["state_dict"], last["state_dict"])
    # AdamW keeps two moments per weight: best.pt is about a third of last.pt
    assert (run / "best.pt").stat().st_size < 0.4 * (run / "last.pt").stat().st_size
    assert describe(str(run / "best.pt"))["resumable"] is False

    assert main(["finetune", "--resume", str(run / "best.pt"), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resume from the run's last.pt" in err[0], err
    assert main(["finetune", "--resume", str(run / "last.pt"), "--epochs", "2"]) == 0
    assert [m["epoch"] for m in _metrics(run)] == [1, 2]
    assert read_checkpoint(run / "last.pt")["train_state"]["epoch"] == 2


def _saved_model(path: Path, num_classes: int, plain: bool) -> dict:
    torch.manual_seed(1)
    state = build_model("resnet18", {"num_classes": num_classes}).state_dict()
    if plain:
        torch.save(state, path)
    else:
        names = [str(i) for i in range(num_classes)]
        save_checkpoint(
            path,
            {
                "arch": "resnet18",
                "arch_kwargs": {"num_classes": num_classes},
                "class_names": names,
                "preprocessing": make_preprocessing(16),
                "state_dict": state,
            },
        )
    return state


@pytest.mark.parametrize(("source_classes", "plain"), [(3, False), (7, True)])
def test_init_loads_the_backbone_and_freezing_keeps_it(
    tiny_digits, tmp_path, source_classes, plain
):
    source = _saved_model(tmp_path / "init.pt", source_classes, plain)
    args = ("--init", str(tmp_path / "init.pt"), "--freeze-backbone", "--epochs", "1")
    assert _finetune(tiny_digits, tmp_path / "run", *args) == 0
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    state = ckpt["state_dict"]
    assert state["fc.weight"].shape == (3, 512)
    backbone = [k for k in state if not k.startswith("fc.")]
    for key in backbone:  # weights and BatchNorm statistics alike
        assert torch.equal(state[key], source[key]), key
    if source_classes == 3:  # same head shape: loaded, then trained
        assert not torch.equal(state["fc.weight"], source["fc.weight"])
    assert ckpt["provenance"]["init"]["fresh_head"] is (source_classes != 3)
    assert ckpt["provenance"]["init"]["kind"] == ("state_dict" if plain else "qa-checkpoint")


def test_weights_are_read_from_the_hub_cache(tiny_digits, tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(weights.url).name
    cached.parent.mkdir(parents=True)
    torch.manual_seed(2)
    source = build_model("resnet18").state_dict()
    torch.save(source, cached)
    args = ("--weights", "DEFAULT", "--freeze-backbone", "--epochs", "1")
    assert _finetune(tiny_digits, tmp_path / "run", *args) == 0
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert torch.equal(ckpt["state_dict"]["layer4.1.conv2.weight"], source["layer4.1.conv2.weight"])
    assert ckpt["preprocessing"]["mean"] == pytest.approx(IMAGENET_MEAN)
    assert ckpt["provenance"]["init"]["name"] == "ResNet18_Weights.IMAGENET1K_V1"


def test_target_accuracy_stops_early(tiny_digits, tmp_path, capsys):
    assert _finetune(tiny_digits, tmp_path / "run", "--epochs", "3", "--target-accuracy", "0") == 0
    assert len(_metrics(tmp_path / "run")) == 1
    assert "--target-accuracy" in capsys.readouterr().out


def test_torchrun_two_processes_write_one_set_of_files(tiny_digits, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "trainer",
        "finetune",
        "--data",
        str(tiny_digits),
        "--out",
        str(out),
        "--epochs",
        "1",
        *FAST,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]
    assert done.stdout.count("epoch 1/1") == 1
    (record,) = _metrics(out)
    # Validation is sharded without padding and summed: exactly the 12 val images count.
    assert round(record["val_acc"] * 12, 6).is_integer()
    assert read_checkpoint(out / "last.pt")["state_dict"]["fc.weight"].shape == (3, 512)


def _all_finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_a_diverging_run_stops_and_saves_nothing(tiny_digits, tmp_path, capsys):
    assert _finetune(tiny_digits, tmp_path / "run", "--epochs", "2", "--lr", "1e30") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: training diverged in epoch 1, step ")
    assert "the loss became nan" in err[0] and "lower --lr (now 1e+30)" in err[0]
    assert err[0].endswith("nothing was saved")
    assert not (tmp_path / "run" / "best.pt").exists()
    assert not (tmp_path / "run" / "last.pt").exists()


def test_divergence_keeps_the_good_checkpoints(tiny_digits, tmp_path, capsys):
    run = tmp_path / "run"
    assert _finetune(tiny_digits, run, "--epochs", "1") == 0
    good = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt")}
    # --lr given again with --resume applies from the resumed epoch on: here, far too high.
    resume = ["finetune", "--resume", str(run / "last.pt"), "--epochs", "3", "--lr", "1e30"]
    assert main(resume) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged in epoch 2, step " in err[0], err
    assert err[0].endswith(f"{run / 'last.pt'} keeps epoch 1, best.pt epoch 1")
    assert {name: (run / name).read_bytes() for name in good} == good
    assert _all_finite(read_checkpoint(run / "last.pt")["state_dict"])
    assert [m["epoch"] for m in _metrics(run)] == [1]


def test_a_killed_writes_temporaries_are_removed_at_the_next_run(tiny_digits, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".last.pt.k1ll3d00.tmp", run / ".best.pt.abc_1234.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 1_500_000)
    others = [run / ".notes.tmp", run / "last.pt.tmp", run / ".last.pt.bak"]
    for path in others:
        path.write_text("not ours")
    assert _finetune(tiny_digits, run, "--epochs", "1") == 0
    out = capsys.readouterr().out.splitlines()
    removed = [line for line in out if line.startswith("removed ")]
    assert removed == [
        f"removed 2 unfinished file(s) an interrupted run left in {run} (3.0 MB): "
        ".best.pt.abc_1234.tmp, .last.pt.k1ll3d00.tmp"
    ]
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in others)
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
