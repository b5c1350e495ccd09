"""`qa run` in one process against `torchrun` with several ranks: wall time and decisions.

The inputs are views_one_pass's (JPEGs 256 px -> 224, its small CNN), with fewer images
(--images, default 400) and views (PERTURBATIONS at severities 1-5, and clean: 16 views).
Each run is cold (`--no-cache`), in a fresh subprocess importing qa from --qa-src:
  one    `python -m qa run SUITE CKPT --out DIR --no-cache --quiet`
  K      `python -m torch.distributed.run --standalone --nproc-per-node K -m qa run ...`
On CPU (gloo) the threads are fair: the one process gets OMP_NUM_THREADS=K, each of K ranks
gets 1 (torch takes its thread count from it); a third run, one process of one thread, is a
control for the cost of OpenMP threads on a shared machine. With --device cuda --gpus N, K
runs 1..N GPUs (one per rank), the first by plain `qa run --device cuda`. Times are the
median of --repeats.
Decisions: result.json's exit code and every check's status must be equal, and its metrics
equal up to 1e-9; the largest metric difference is printed.

It measures the sharded engine of issue 13: a qa without torch.distributed support runs the
whole suite in every rank (same decisions, no speedup).

    .venv/bin/python bench/torchrun_scaling.py [--images 400] [--nproc 2] [--repeats 3]
        [--qa-src PATH] [--device cpu | --device cuda --gpus N]

The last line is the headline, `torchrun_speedup_2proc: <one / K>` (on CUDA
`torchrun_speedup_<N>gpu`).
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from views_one_pass import ROOT, make_inputs, qa_env, spread, use_qa_src

PERTURBATIONS = ["gaussian_noise", "brightness", "contrast"]


def run_cli(qa_src: Path, inputs: dict, out: Path, ranks: int, device: str, threads) -> float:
    """Wall seconds of one cold `qa run` (ranks == 1) or torchrun of `ranks` ranks."""
    qa = ["-m", "qa", "run", str(inputs["suite"]), str(inputs["ckpt"]), "--out", str(out)]
    qa += ["--no-cache", "--quiet", "--device", device]
    launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    command = [sys.executable, *(launch if ranks > 1 else []), *qa]
    env = qa_env(qa_src, **({} if threads is None else {"OMP_NUM_THREADS": str(threads)}))
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=out.parent, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return seconds


def decisions(out: Path) -> dict:
    """result.json's exit code, and per check its status and metrics."""
    doc = json.loads((out / "result.json").read_text())
    checks = {c["name"]: (c["status"], c["metrics"]) for c in doc["checks"]}
    return {"exit_code": doc["exit_code"], "checks": checks}


def compare(one: dict, other: dict) -> tuple[bool, float]:
    """Whether two runs decided alike (exit code, statuses, metrics within 1e-9), and the
    largest difference of a numeric metric."""
    same = one["exit_code"] == other["exit_code"] and one["checks"].keys() == other["checks"].keys()
    worst = 0.0
    for name, (status, metrics) in one["checks"].items():
        theirs_status, theirs = other["checks"].get(name, (None, {}))
        same = same and status == theirs_status and metrics.keys() == theirs.keys()
        for key, value in metrics.items():
            if isinstance(value, int | float) and isinstance(theirs.get(key), int | float):
                worst = max(worst, abs(value - theirs[key]))
                same = same and math.isclose(value, theirs[key], rel_tol=0, abs_tol=1e-9)
            else:
                same = same and value == theirs.get(key)
    return same, worst


def main() -> None:
    """Time one process against K ranks, compare their decisions, print the speedup last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nproc", type=int, default=2, help="ranks on CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--qa-src", default=str(ROOT))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--gpus", type=int, default=1, help="with --device cuda: 1..N GPUs")
    args = parser.parse_args()
    qa_src = use_qa_src(args.qa_src)
    runs = contenders(args.device, args.nproc, args.gpus)
    with tempfile.TemporaryDirectory(prefix="qa-bench-torchrun-") as tmp:
        work = Path(tmp)
        inputs = make_inputs(work, args.images, args.batch_size, PERTURBATIONS)
        print(
            f"qa from {qa_src}; {args.images} JPEGs, {1 + 5 * len(PERTURBATIONS)} views, "
            f"batch {args.batch_size}, {args.device}, {args.repeats} repeats"
        )
        times, results = {}, {}
        for _ in range(args.repeats):
            for i, (label, ranks, threads) in enumerate(runs):
                out = work / f"out-{i}"
                seconds = run_cli(qa_src, inputs, out, ranks, args.device, threads)
                times.setdefault(label, []).append(seconds)
                results[label] = decisions(out)
    first = runs[0][0]
    base = statistics.median(times[first])
    for label, _, _ in runs:
        same, worst = compare(results[first], results[label])
        speedup = base / statistics.median(times[label])
        print(
            f"{label}: {spread(times[label])}, speedup {speedup:.2f}, decisions identical: "
            f"{'yes' if same else 'NO'} (largest metric difference {worst:.2g})"
        )
    label, ranks, _ = runs[1] if args.device == "cpu" else runs[-1]
    name = f"{ranks}proc" if args.device == "cpu" else f"{ranks}gpu"
    print(f"torchrun_speedup_{name}: {base / statistics.median(times[label]):.2f}")


def contenders(device: str, nproc: int, gpus: int) -> list[tuple[str, int, int | None]]:
    """(label, ranks, torch threads per rank) of each timed run, the reference first.

    On CPU: one process with `nproc` threads, `nproc` ranks of one thread, and as a control one
    process of one thread (on a shared machine, OpenMP threads waiting for each other can make
    one thread faster than two). On CUDA: 1..`gpus` ranks of one GPU each.
    """
    if device == "cpu":
        return [
            (f"1 process, {nproc} threads", 1, nproc),
            (f"{nproc} ranks, 1 thread each", nproc, 1),
            ("1 process, 1 thread (control)", 1, 1),
        ]
    return [(f"{k} GPU(s)", k, None) for k in range(1, gpus + 1)]


if __name__ == "__main__":
    main()
