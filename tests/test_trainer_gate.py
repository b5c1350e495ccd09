"""`trainer finetune --gate SUITE` on tiny real digits: the suite picks best.pt and stops the run."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import write_suite

from qa.api import Check, Threshold
from qa.checkpoint import read_checkpoint
from trainer import gate
from trainer.cli import main
from trainer.config import TrainConfig

FAST = ["--batch-size", "8", "--workers", "0", "--image-size", "16"]
ACCURACY = """\
- kind: top1_accuracy
  name: top-1 accuracy
  min: {minimum}
- kind: nll
  max: 100.0
"""


def _suite(tmp_path: Path, data: Path, minimum: float, name: str = "gate.yaml") -> Path:
    """A suite gating top-1 accuracy on the tiny val split: min 0 always passes, min 1 never
    (the lower bound of 12 images stays below 1)."""
    return write_suite(tmp_path / name, data / "val", ACCURACY.format(minimum=minimum))


def _finetune(data: Path, out: Path, *extra: str) -> int:
    args = ["finetune", "--data", str(data), "--out", str(out), *FAST, *extra]
    return main([*args, "--gate-cache", str(out.parent / "cache")])


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_stop_when_passing_ships_the_gated_file(tiny_digits, tmp_path, capsys):
    suite, run = _suite(tmp_path, tiny_digits, 0.0), tmp_path / "run"
    args = ("--epochs", "3", "--gate", str(suite), "--stop-when-passing")
    assert _finetune(tiny_digits, run, *args) == 0
    out = capsys.readouterr().out
    assert "gate epoch 1: PASS" in out and "--stop-when-passing" in out
    (record,) = _metrics(run)
    assert record["gate"]["verdict"] == "pass" and record["gate"]["failed"] == []
    top1 = record["gate"]["checks"]["top-1 accuracy"]
    assert top1["status"] == "pass" and top1["op"] == ">=" and top1["threshold"] == 0.0
    assert 0.0 <= top1["value"] <= record["val_acc"]  # the lower bound, on the same images
    report = json.loads(Path(record["gate"]["report"]).read_text())
    # best.pt is the very file the suite gated, not a re-save of it
    assert report["verdict"] == "pass"
    assert report["checkpoint"]["sha256"] == _sha256(run / "best.pt")
    assert not (run / "gate" / "epoch-001.pt").exists()
    last = read_checkpoint(run / "last.pt")
    assert last["train_state"]["gate"]["best"]["epoch"] == 1


@pytest.mark.slow
def test_a_suite_never_passed_exits_1_naming_the_check(tiny_digits, tmp_path, capsys):
    suite, run = _suite(tmp_path, tiny_digits, 1.0), tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"an earlier run's best.pt, never gated")
    assert _finetune(tiny_digits, run, "--epochs", "2", "--gate", str(suite)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "none of the 2 gated epochs passed" in err[0]
    assert "never passed: top-1 accuracy (best " in err[0] and "needs >= 1)" in err[0]
    assert "nll" not in err[0]
    assert not (run / "best.pt").exists() and (run / "last.pt").is_file()
    assert [r["gate"]["failed"] for r in _metrics(run)] == [["top-1 accuracy"]] * 2
    assert sorted(p.name for p in (run / "gate").iterdir()) == ["epoch-001", "epoch-002"]


@pytest.mark.slow
def test_gate_every_gates_every_nth_and_the_last_epoch(tiny_digits, tmp_path):
    suite, run = _suite(tmp_path, tiny_digits, 0.0), tmp_path / "run"
    args = ("--epochs", "3", "--gate", str(suite), "--gate-every", "2")
    assert _finetune(tiny_digits, run, *args) == 0
    assert ["gate" in r for r in _metrics(run)] == [False, True, True]
    best = read_checkpoint(run / "best.pt")["provenance"]["metrics"]["final"]["epoch"]
    assert best in (2, 3)


@pytest.mark.slow
def test_the_gate_leaves_training_as_it_was(tiny_digits, tmp_path):
    # crop augmentation in the main process draws from torch's global RNG, which the
    # engine reseeds: the gate must put it back.
    args = ("--epochs", "2", "--augment", "crop", "--seed", "5")
    assert _finetune(tiny_digits, tmp_path / "plain", *args) == 0
    suite = _suite(tmp_path, tiny_digits, 0.0)
    assert _finetune(tiny_digits, tmp_path / "gated", *args, "--gate", str(suite)) == 0
    plain = read_checkpoint(tmp_path / "plain" / "last.pt")["state_dict"]
    gated = read_checkpoint(tmp_path / "gated" / "last.pt")["state_dict"]
    assert all((plain[k] == gated[k]).all() for k in plain)


@pytest.mark.slow
def test_under_torchrun_every_rank_stops_at_the_first_pass(tiny_digits, tmp_path):
    # rank 0 gates; were the verdict not shared, rank 1 would go on to epoch 2 alone and hang
    suite, run = _suite(tmp_path, tiny_digits, 0.0), tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "trainer", "finetune", *FAST]
    command += ["--data", str(tiny_digits), "--out", str(run), "--epochs", "3"]
    command += ["--gate", str(suite), "--stop-when-passing", "--gate-cache", str(tmp_path / "c")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("gate epoch 1: PASS") == 1 and "epoch 2/3" not in done.stdout
    assert [r["gate"]["verdict"] for r in _metrics(run)] == ["pass"]
    assert (run / "best.pt").is_file()


@pytest.mark.slow
def test_a_resumed_run_keeps_its_gate_record(tiny_digits, tmp_path, capsys):
    suite, run = _suite(tmp_path, tiny_digits, 1.0), tmp_path / "run"
    assert _finetune(tiny_digits, run, "--epochs", "1", "--gate", str(suite)) == 1
    assert main(["finetune", "--resume", str(run / "last.pt"), "--epochs", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "none of the 2 gated epochs passed" in err[-1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("suite_text", "expected"),
    [
        ("name: x\ndata:\n  eval: {val}\nchecks:\n  - kind: top1_acuracy\n", "top1_acuracy"),
        ("name: x\ndata:\n  eval: {val}/missing\nchecks:\n  - kind: top1_accuracy\n", "missing"),
        (
            "name: x\nplugins: [never_imported]\ndata:\n  eval: {val}\nchecks:\n"
            "  - kind: top1_accuracy\n",
            "expected --trust-plugins",
        ),
    ],
)
def test_a_bad_suite_stops_before_any_epoch(tiny_digits, tmp_path, capsys, suite_text, expected):
    suite = tmp_path / "bad.yaml"
    suite.write_text(suite_text.format(val=tiny_digits / "val"))
    assert _finetune(tiny_digits, tmp_path / "run", "--gate", str(suite)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err
    assert not (tmp_path / "run").exists()


def test_stop_when_passing_needs_a_gate(tiny_digits, tmp_path, capsys):
    assert _finetune(tiny_digits, tmp_path / "run", "--stop-when-passing") == 2
    assert "--stop-when-passing needs --gate" in capsys.readouterr().err


def _result(**values: float) -> SimpleNamespace:
    """A gate Result whose named `>=` checks failed with these values."""
    failed = [
        Check(n, "k", "accuracy", "fail", "fail", "", v, v, None, Threshold("m", ">=", 0.9))
        for n, v in values.items()
    ]
    return SimpleNamespace(failed=failed)


def test_never_passed_keeps_each_checks_best_value():
    state, cfg = gate.new_state(), TrainConfig(gate="s.yaml")
    for epoch, result in enumerate(
        [_result(a=0.5, b=0.2), _result(a=0.7, b=0.1), _result(a=0.6)], 1
    ):
        gate._remember_failures(state, epoch, result)
    line = gate.never_passed(cfg, state)
    assert "none of the 3 gated epochs passed" in line
    assert line.endswith("never passed: a (best 0.7 at epoch 2, needs >= 0.9)")


def test_never_all_at_once_names_the_last_failures():
    state, cfg = gate.new_state(), TrainConfig(gate="s.yaml")
    gate._remember_failures(state, 1, _result(a=0.5))
    gate._remember_failures(state, 2, _result(b=0.5))
    assert gate.never_passed(cfg, state).endswith("never all at once (last failed: b)")


def test_an_unproven_best_pt_is_removed_and_a_passing_one_kept(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"x")
    state = gate.new_state()
    state["best"] = {"epoch": 1, "metric": "val_acc", "value": 0.5}
    assert gate.forget_unproven_best(tmp_path, state) is None
    assert "removed" in gate.forget_unproven_best(tmp_path, gate.new_state())
    assert not (tmp_path / "best.pt").exists()
