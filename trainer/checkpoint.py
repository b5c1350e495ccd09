"""The files a run writes: checkpoints with provenance and resumable state, and the metrics log.

Everything stored is plain data and tensors, so `torch.load(weights_only=True)` reads it back.
"""

import datetime
import json
import platform
import random
import subprocess
from pathlib import Path

import torch

import qa
from qa.checkpoint import read_checkpoint, save_checkpoint
from qa.errors import InputError
from qa.io import check_writable, stale_temporaries, write_text_atomic

TRAIN_STATE_KEYS = ("epoch", "optimizer", "scheduler", "rng", "best", "bad_epochs")
RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl")


def versions() -> dict:
    """Versions of the software that produced a checkpoint."""
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a TorchVersion would need unpickling code
        "torchvision": str(torchvision.__version__),
        "qa": qa.__version__,
    }


def git_commit() -> str | None:
    """The commit of the repository the run was started from, or None outside one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def created() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def rng_state() -> dict:
    """Every global random state training consumes, as tensors and lists."""
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
    }


def restore_rng(state: dict) -> None:
    """Put back the random states saved by `rng_state`, so a resumed epoch replays exactly."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def read_resumable(path: str) -> dict:
    """Read a checkpoint to --resume from: ours, and written with its training state."""
    ckpt = read_checkpoint(path)
    state = ckpt.get("train_state")
    config = ckpt.get("provenance", {}).get("config")
    if not isinstance(state, dict) or not isinstance(config, dict):
        raise InputError(
            f"--resume {path}: the checkpoint has no training state to resume "
            "(resume from the run's last.pt; best.pt holds only the weights, which --init "
            "starts a new run from)"
        )
    missing = sorted(set(TRAIN_STATE_KEYS) - set(state))
    if missing:
        raise InputError(f"--resume {path}: the training state lacks {missing}")
    return ckpt


def check_rundir(rundir: str | Path) -> None:
    """Refuse the run folder in one line before any training: a file in its place or on its
    path, a folder this user cannot write, or a folder where a run file should go. Nothing is
    created here: a run refused later (bad data, say) leaves no empty folder behind."""
    rundir = Path(rundir)
    check_writable(rundir, "--out", folder=True)
    for name in RUN_FILES:
        if (rundir / name).is_dir():
            raise InputError(f"--out {rundir}: expected {name} to be a file, found a folder")


def remove_stale_temporaries(rundir: str | Path) -> str | None:
    """Delete the half-written run files a killed run left behind (each as big as a
    checkpoint); returns a line saying what went, or None when there were none."""
    stale = stale_temporaries(rundir, list(RUN_FILES))
    if not stale:
        return None
    size = sum(path.stat().st_size for path in stale)
    for path in stale:
        path.unlink(missing_ok=True)
    names = ", ".join(path.name for path in stale)
    return (
        f"removed {len(stale)} unfinished file(s) an interrupted run left in {rundir} "
        f"({size / 1e6:.1f} MB): {names}"
    )


def save_run(rundir: str | Path, ckpt: dict, best: bool) -> None:
    """Write last.pt, and best.pt when this epoch is the best so far (both atomically).

    last.pt keeps the training state --resume needs (optimiser moments, scheduler, RNG,
    epoch): for AdamW twice the weights' size again. best.pt is what ships, so it holds only
    what inference and qa read: the weights and the metadata, about a third of last.pt.
    """
    rundir = Path(rundir)
    save_checkpoint(rundir / "last.pt", ckpt)
    if best:
        save_checkpoint(rundir / "best.pt", deployable(ckpt))


def deployable(ckpt: dict) -> dict:
    """The checkpoint without its training state: what `qa run` and inference need."""
    return {key: value for key, value in ckpt.items() if key != "train_state"}


def start_metrics_log(path: str | Path, through_epoch: int) -> None:
    """Keep the log's records up to `through_epoch` (a resumed run's), drop any later ones."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.is_file() and through_epoch > 0 else []
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short when a run was killed
            continue
        if record.get("epoch", 0) <= through_epoch:
            kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def append_metrics(path: str | Path, record: dict) -> None:
    """Append one epoch's metrics as a JSON line."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
