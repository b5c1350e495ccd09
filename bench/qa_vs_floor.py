"""What `qa run` costs over the pure-inference floor, on real digits.

The data: all 1,797 scikit-learn digits at 32x32, written as one ImageFolder and replicated
(--copies, default 2: 3,594 images) so fixed costs do not dominate. The model: a random-weight
resnet18 saved as a qa checkpoint (its accuracy is irrelevant to the timing). The suite:
every accuracy and calibration check that reads the clean view (CHECKS below), so both sides
do one inference pass; views of other kinds are each one more such pass.

Measured, each in its own fresh subprocess (so peak RSS is per contender), after imports,
so interpreter start-up and `import torch` are excluded from both sides:
  floor  a plain loop: scan the folder, DataLoader (same batch size, workers, threads) decoding
         with the same to_unit_tensor + normalize, forward under inference_mode, keep logits;
         the checkpoint is loaded inside the timed region, as qa must.
  cold   `qa.application.run_suite` (the function `qa run` calls) with an empty cache dir: suite
         loading, checkpoint loading, data fingerprint, inference, checks, reports
         (progress bar on, to a pipe, as in CI).
  warm   the same call again in the same process: everything from the cache.
Times are the best of --repeats runs; memory is ru_maxrss of the process (floor vs qa).

    .venv/bin/python bench/qa_vs_floor.py [--copies 2] [--size 96] [--repeats 2] [--batch-size 256]

Targets: cold/floor <= 1.15, warm/cold <= 0.05, memory qa/floor <= 1.10. The last line is the
headline, cold/floor, as `qa_vs_floor: <ratio>`.
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# Every check that reads the one clean view, so the floor (one plain pass) is the same work.
CHECKS = [
    {"kind": "top1_accuracy", "min": 0.0},
    {"kind": "topk_accuracy", "k": 2, "min": 0.0},
    {"kind": "per_class_recall", "min": 0.0},
    {"kind": "macro_f1", "min": 0.0},
    {"kind": "confusion_rate", "true": "3", "predicted": "8", "max": 1.0},
    {"kind": "ece", "max": 1.0},
    {"kind": "nll", "max": 100.0},
]


def make_inputs(work: Path, copies: int, batch_size: int, size: int) -> dict:
    """Write the data, the checkpoint and the suite under `work`; return their paths."""
    import yaml

    from qa.architectures import build_model
    from qa.checkpoint import save_checkpoint
    from qa.preprocess import make_preprocessing
    from trainer.digits import write_digits

    write_digits(work / "digits", size=size, seed=0)
    data = work / "eval"
    for image in sorted((work / "digits").rglob("*.png")):
        for copy in range(copies):
            target = data / image.parent.name / f"{image.parent.parent.name}-{copy}-{image.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(image, target)
    classes = [str(d) for d in range(10)]
    save_checkpoint(
        work / "model.pt",
        {
            "arch": "resnet18",
            "arch_kwargs": {"num_classes": 10},
            "class_names": classes,
            "preprocessing": make_preprocessing(size),
            "state_dict": build_model("resnet18", {"num_classes": 10}).state_dict(),
        },
    )
    suite = {
        "name": "bench",
        "data": {"eval": str(data)},
        "defaults": {"batch_size": batch_size},
        "checks": CHECKS,
    }
    (work / "suite.yaml").write_text(yaml.safe_dump(suite))
    n = sum(1 for _ in data.rglob("*.png"))
    return {
        "data": str(data),
        "ckpt": str(work / "model.pt"),
        "suite": str(work / "suite.yaml"),
        "n": n,
    }


def floor(inputs: dict, batch_size: int, repeats: int) -> dict:
    """The plain inference loop: best time over `repeats`, and this process's peak RSS."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset

    from qa.checkpoint import load_model
    from qa.preprocess import load_rgb, normalize, to_unit_tensor

    class Files(Dataset):
        def __init__(self, paths, transform):
            self.paths, self.transform = paths, transform

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, i):
            return self.transform(load_rgb(self.paths[i]))

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model = load_model(inputs["ckpt"])
        paths = sorted(str(p) for p in Path(inputs["data"]).rglob("*.png"))
        loader = DataLoader(
            Files(paths, to_unit_tensor(model.preprocessing)), batch_size=batch_size, num_workers=0
        )
        norm, chunks = normalize(model.preprocessing), []
        with torch.inference_mode():
            for images in loader:
                chunks.append(model.module(norm(images)).float().numpy())
        logits = np.concatenate(chunks)
        times.append(time.perf_counter() - start)
        assert logits.shape == (inputs["n"], 10)
    return {"seconds": min(times), "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def qa_runs(inputs: dict, repeats: int, work: Path) -> dict:
    """`run_suite` cold (empty cache) then warm: best times over `repeats`, and peak RSS."""
    from qa.application import RunOptions, run_suite

    cold, warm = [], []
    for i in range(repeats):
        options = RunOptions(out=work / "reports", cache_dir=work / f"cache-{i}")
        for times in (cold, warm):
            start = time.perf_counter()
            report = run_suite(inputs["suite"], inputs["ckpt"], options)
            times.append(time.perf_counter() - start)
            assert report.exit_code in (0, 1), report.verdict
    return {
        "cold": min(cold),
        "warm": min(warm),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def contender(which: str, inputs: dict, args, work: Path) -> dict:
    """Run one contender in a fresh interpreter; its JSON result line."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        which,
        "--inputs",
        json.dumps(inputs),
        "--batch-size",
        str(args.batch_size),
        "--repeats",
        str(args.repeats),
        "--work",
        str(work),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{which} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Build the inputs, measure floor and qa in separate processes, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2)
    # 96 px: big enough that inference, not qa's fixed ~0.4 s (data scan, checkpoint load,
    # the checks' bootstraps), is what a run costs, as with real 224 px images; at 32 px the
    # floor is only 2 s and those fixed costs show.
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--worker", choices=("floor", "qa"))
    parser.add_argument("--inputs")
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.worker == "floor":
        print(json.dumps(floor(json.loads(args.inputs), args.batch_size, args.repeats)))
        return
    if args.worker == "qa":
        print(json.dumps(qa_runs(json.loads(args.inputs), args.repeats, Path(args.work))))
        return
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        work = Path(tmp)
        inputs = make_inputs(work, args.copies, args.batch_size, args.size)
        print(
            f"{inputs['n']} images of {args.size}x{args.size}, resnet18, batch {args.batch_size}, cpu"
        )
        plain = contender("floor", inputs, args, work)
        qa = contender("qa", inputs, args, work)
    cold_floor = qa["cold"] / plain["seconds"]
    warm_cold = qa["warm"] / qa["cold"]
    memory = qa["maxrss_kb"] / plain["maxrss_kb"]
    print(f"floor  {plain['seconds']:.2f}s  peak RSS {plain['maxrss_kb'] / 1024:.0f} MiB")
    print(f"cold   {qa['cold']:.2f}s  peak RSS {qa['maxrss_kb'] / 1024:.0f} MiB")
    print(f"warm   {qa['warm']:.2f}s")
    print(f"cold/floor {cold_floor:.3f} (target <= 1.15)")
    print(f"warm/cold  {warm_cold:.3f} (target <= 0.05)")
    print(f"memory qa/floor {memory:.3f} (target <= 1.10)")
    print(f"qa_vs_floor: {cold_floor:.2f}")


if __name__ == "__main__":
    main()
