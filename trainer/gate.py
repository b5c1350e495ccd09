"""`trainer finetune --gate SUITE`: the release gates, not one validation number, pick what ships.

A gated epoch (every --gate-every epochs, the last one, and one that early stopping ends the
run on) writes its checkpoint, as best.pt would hold it, to OUT/gate/epoch-NNN.pt, and
`qa.run` gates that file through the view cache (--gate-cache, default OUT/.qa-cache): the
data's index and profiles and the baseline's views are computed once, so an epoch costs the
new candidate's inference and the checks. The result document goes to
OUT/gate/epoch-NNN/result.json (`qa report` renders the others from it) and the epoch's line
in metrics.jsonl gets `gate`: the verdict, the checks that failed, and each check's status,
compared value and threshold.

best.pt is the gated file itself, renamed, so its bytes are the ones result.json's sha256
names: the best epoch by --metric among those that passed. A failing epoch never becomes
best.pt, a best.pt no passing epoch of this run wrote is removed when the run starts, and a run
where no epoch passed ends with exit 1 (GateFailed) naming the checks that never passed, each
with its best value against its threshold. --stop-when-passing stops after the first pass.

Under torchrun rank 0 gates and every rank learns the verdict. The gate puts back the global
random states the engine consumes (it seeds torch), so a gated run trains exactly as an
ungated one.
"""

import os
import time
from pathlib import Path

import torch

from qa.checkpoint import save_checkpoint
from qa.errors import ExitCode, InputError, QAError
from qa.io import check_writable, write_text_atomic
from qa.report import json_report
from qa.suite import load_suite
from trainer import checkpoint, distributed
from trainer.config import TrainConfig, improves


class GateFailed(QAError):
    """No gated epoch passed the suite: the run produced nothing shippable (exit 1)."""

    exit_code = ExitCode.GATE_FAILED


def new_state() -> dict:
    """A run's gate record, plain data kept in last.pt's train_state: the best passing epoch
    ({"epoch", "metric", "value"}), the epochs that passed, how many were gated, and the checks
    that failed at every gated epoch so far, each with its best value."""
    return {"best": {}, "passed": [], "gated": 0, "never": {}, "last_failed": []}


def cache_dir(cfg: TrainConfig) -> Path:
    """Where the gate's views, data index and profiles are cached."""
    return Path(cfg.gate_cache) if cfg.gate_cache else Path(cfg.out) / ".qa-cache"


def check(cfg: TrainConfig) -> None:
    """Refuse, before any training, a suite `qa validate` would refuse (its data and baseline
    paths included) and a cache folder that cannot be written: InputError, one line."""
    load_suite(cfg.gate, check_paths=True, trust_plugins=cfg.trust_plugins)
    check_writable(cache_dir(cfg), "--gate-cache", folder=True)


def forget_unproven_best(rundir: Path, state: dict) -> str | None:
    """Remove a best.pt that no passing epoch of this run wrote (an earlier run's, or one a
    run resumed with --gate picked by --metric alone); returns a line saying so, or None."""
    best = rundir / "best.pt"
    if state["best"] or not best.is_file():
        return None
    best.unlink()
    return f"removed {best}: no epoch of this run has passed --gate yet"


def due(cfg: TrainConfig, epoch: int, stopping: bool) -> bool:
    """Whether this epoch is gated: every --gate-every, the last, and one the run stops on."""
    return epoch % cfg.gate_every == 0 or epoch == cfg.epochs or stopping


def judge(run, record: dict, ckpt: dict) -> bool:
    """Gate this epoch's checkpoint `ckpt` as best.pt would hold it (on rank 0), add `record["gate"]` and promote it to best.pt when it passes and beats the best passing
    epoch by --metric. Returns whether best.pt was replaced; on every rank, the epoch joins
    `run.gate["passed"]` when it passed."""
    promoted = passed = False
    if run.world.is_main:
        started = time.perf_counter()
        candidate = checkpoint.deployable(ckpt)
        result, path = _run_suite(run, record["epoch"], candidate)
        record["gate"] = summary(result, run.cfg.out, record["epoch"])
        passed = result.passed
        promoted = passed and improves(
            run.cfg.metric, record[run.cfg.metric], run.gate["best"].get("value")
        )
        if promoted:
            os.replace(path, Path(run.cfg.out) / "best.pt")
            run.gate["best"] = {
                "epoch": record["epoch"],
                "metric": run.cfg.metric,
                "value": record[run.cfg.metric],
            }
        else:
            path.unlink()
        _remember_failures(run.gate, record["epoch"], result)
        record["gate"]["seconds"] = time.perf_counter() - started
    flag = torch.tensor([float(passed)], device=run.device)
    if distributed.sum_across(flag, run.world).item() > 0:
        run.gate["passed"].append(record["epoch"])
    return promoted


def _run_suite(run, epoch: int, candidate: dict):
    """Write the candidate, gate it, save its result.json; the Result and the file's path."""
    from qa.api import run as qa_run

    cfg = run.cfg
    folder = Path(cfg.out) / "gate"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"epoch-{epoch:03d}.pt"
    save_checkpoint(path, candidate)
    rng = checkpoint.rng_state()  # the engine seeds torch: training must not feel the gate
    try:
        result = qa_run(
            cfg.gate,
            path,
            device=run.device.type,
            cache_dir=cache_dir(cfg),
            trust_plugins=cfg.trust_plugins,
        )
    except InputError as exc:
        path.unlink()
        raise InputError(f"--gate {cfg.gate}: epoch {epoch}: {exc}") from None
    finally:
        checkpoint.restore_rng(rng)
    report = folder / f"epoch-{epoch:03d}" / "result.json"
    report.parent.mkdir(exist_ok=True)
    write_text_atomic(report, json_report.render(result.to_dict()))
    return result, path


def summary(result, rundir: str, epoch: int) -> dict:
    """The gate's entry of an epoch's metrics line: verdict, failing checks, each check's
    status with the value it compared and its threshold (None where it has no gate)."""
    checks = {}
    for c in result.checks:
        gate = c.threshold
        checks[c.name] = {
            "status": c.status,
            "value": c.value,
            "op": gate.op if gate else None,
            "threshold": gate.value if gate else None,
        }
    return {
        "verdict": result.verdict,
        "failed": [c.name for c in result.failed],
        "checks": checks,
        "report": str(Path(rundir) / "gate" / f"epoch-{epoch:03d}" / "result.json"),
    }


def _remember_failures(state: dict, epoch: int, result) -> None:
    """Keep, for each check that failed at every gated epoch so far, its best value."""
    failing = {c.name: c for c in result.failed}
    kept = (
        failing if state["gated"] == 0 else {n: failing[n] for n in state["never"] if n in failing}
    )
    never = {}
    for name, c in kept.items():
        old = state["never"].get(name)
        new = {
            "status": c.status,
            "value": c.value,
            "epoch": epoch,
            "op": c.threshold.op if c.threshold else None,
            "threshold": c.threshold.value if c.threshold else None,
        }
        never[name] = new if old is None or _closer(new, old) else old
    state["never"] = never
    state["gated"] += 1
    state["last_failed"] = list(failing)


def _closer(new: dict, old: dict) -> bool:
    """Whether `new` came closer to passing than `old`: higher for a `>=` gate, lower for `<=`."""
    if new["value"] is None:
        return False
    if old["value"] is None:
        return True
    return new["value"] > old["value"] if new["op"] == ">=" else new["value"] < old["value"]


def epoch_line(record: dict) -> str:
    """One line after the epoch's summary: the verdict, what failed, where the report is."""
    gate = record["gate"]
    failed = f" ({', '.join(gate['failed'])})" if gate["failed"] else ""
    return (
        f"gate epoch {record['epoch']}: {gate['verdict'].upper()}{failed}  "
        f"{gate['seconds']:.1f}s  {gate['report']}"
    )


def never_passed(cfg: TrainConfig, state: dict) -> str:
    """The final line of a run where no gated epoch passed: the checks that never passed, each
    with its best value against its threshold, or, when each passed at some epoch, the last
    gated epoch's failures."""
    head = f"--gate {cfg.gate}: none of the {state['gated']} gated epochs passed; no best.pt"
    if not state["never"]:
        last = ", ".join(state["last_failed"])
        return (
            f"{head}; every check passed at some epoch but never all at once (last failed: {last})"
        )
    return f"{head}; never passed: " + ", ".join(
        _closest(name, entry) for name, entry in state["never"].items()
    )


def _closest(name: str, entry: dict) -> str:
    if entry["value"] is None or entry["threshold"] is None:
        return f"{name} ({entry['status']} at every gated epoch)"
    return (
        f"{name} (best {entry['value']:.4g} at epoch {entry['epoch']}, "
        f"needs {entry['op']} {entry['threshold']:g})"
    )
