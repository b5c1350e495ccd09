"""The whole command as a user feels it: `qa run` cold and warm against a plain script (issue 16).

The workload: 10,000 real digit PNGs at 32 px (scikit-learn's 1,797 digits written by
`trainer data digits`, repeated under new names), a random-weight resnet18 saved as a qa
checkpoint, batch 256, 2 threads (OMP_NUM_THREADS and MKL_NUM_THREADS for every process).
Each repeat runs, each in a fresh process, one after the other (paired):

  floor  a plain script: import torch and torchvision, build the ImageFolder, load the
         weights, run inference, compute accuracy and a confusion matrix;
  cold   `qa run SUITE CKPT` with an empty cache folder: the seven clean-view checks of
         CHECKS, every report written, progress to a pipe as in CI;
  warm   the same command again on that cache folder (every view cached).

Wall seconds come from the parent's clock around each process; peak RSS from that process's
own rusage (os.wait4). Also measured: `python -c "import qa"` and `qa --help`, less a bare
interpreter's start-up.

    .venv/bin/python bench/whole_process.py [--images 10000] [--repeats 5] [--threads 2]

Prints each median with min and max, the warm run, the import times, and last the median of
the paired ratios as `cold_vs_floor: X`.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qa_vs_floor import CHECKS  # the seven clean-view checks: qa does the floor's one pass

ROOT = Path(__file__).resolve().parents[1]
FLOOR = """\
import sys
import numpy as np
import torch
import torchvision
from torchvision import transforms

data, ckpt, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
saved = torch.load(ckpt, map_location="cpu", weights_only=True)
model = torchvision.models.resnet18(num_classes=10)
model.load_state_dict(saved["state_dict"])
model.eval()
pre = saved["preprocessing"]
tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(pre["mean"], pre["std"])])
dataset = torchvision.datasets.ImageFolder(data, transform=tf)
loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=0)
preds, labels = [], []
with torch.inference_mode():
    for images, targets in loader:
        preds.append(model(images).argmax(1).numpy())
        labels.append(targets.numpy())
pred, label = np.concatenate(preds), np.concatenate(labels)
confusion = np.zeros((10, 10), dtype=np.int64)
np.add.at(confusion, (label, pred), 1)
print(f"accuracy {float((pred == label).mean()):.4f} n {len(label)} {confusion.sum()}")
"""


def make_inputs(work: Path, images: int, batch_size: int) -> dict:
    """Write the data, the checkpoint, the suite and the floor script under `work`."""
    import yaml

    from qa.architectures import build_model
    from qa.checkpoint import save_checkpoint
    from qa.preprocess import make_preprocessing
    from trainer.digits import write_digits

    write_digits(work / "digits", size=32, seed=0)
    sources = sorted((work / "digits").rglob("*.png"))
    data = work / "eval"
    for i in range(images):
        image = sources[i % len(sources)]
        target = data / image.parent.name / f"{i:05d}-{image.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, target)
    save_checkpoint(
        work / "model.pt",
        {
            "arch": "resnet18",
            "arch_kwargs": {"num_classes": 10},
            "class_names": [str(d) for d in range(10)],
            "preprocessing": make_preprocessing(32),
            "state_dict": build_model("resnet18", {"num_classes": 10}).state_dict(),
        },
    )
    suite = {"name": "bench", "data": {"eval": str(data)}, "defaults": {"batch_size": batch_size}}
    (work / "suite.yaml").write_text(yaml.safe_dump({**suite, "checks": CHECKS}))
    (work / "floor.py").write_text(FLOOR)
    return {"data": data, "ckpt": work / "model.pt", "suite": work / "suite.yaml"}


def timed(command: list, env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one fresh process running `command`."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{command[:4]} exited {code}: {child.stderr.read().decode()[-2000:]}")
    child.stderr.close()
    return seconds, usage.ru_maxrss / 1024


def summary(values: list[float]) -> str:
    """Median with min and max, as every row prints it."""
    return f"{statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--make-inputs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_inputs is not None:
        make_inputs(args.make_inputs, args.images, args.batch_size)
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.pop("GITHUB_ACTIONS", None)
    # Python's default, as a user's has it: a module's bytecode is written on its first import
    # and read after (pip writes torch's at install; an editable qa writes its own on the first
    # run), so no process pays for compiling qa's sources on every run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="qa-whole-") as tmp:
        work = Path(tmp)
        # in a child: a parent that imported torch would lend its peak RSS to every process
        # it starts (Linux carries the high-water mark across fork and exec)
        inputs = ["--make-inputs", str(work), "--images", str(args.images)]
        inputs += ["--batch-size", str(args.batch_size)]
        subprocess.run([python, __file__, *inputs], check=True, cwd=ROOT)
        paths = {"data": work / "eval", "ckpt": work / "model.pt", "suite": work / "suite.yaml"}
        floor_cmd = [python, str(work / "floor.py"), str(paths["data"]), str(paths["ckpt"])]
        floor_cmd.append(str(args.batch_size))
        rows = {"floor": [], "cold": [], "warm": []}
        rss = {name: [] for name in rows}
        for i in range(args.repeats):
            cache, out = work / f"cache-{i}", work / f"reports-{i}"
            qa_cmd = [python, "-m", "qa", "run", str(paths["suite"]), str(paths["ckpt"])]
            qa_cmd += ["--out", str(out), "--cache-dir", str(cache)]
            for name, command in (("floor", floor_cmd), ("cold", qa_cmd), ("warm", qa_cmd)):
                seconds, peak = timed(command, env)
                rows[name].append(seconds)
                rss[name].append(peak)
            shutil.rmtree(cache)
        bare = [timed([python, "-c", "pass"], env)[0] for _ in range(args.repeats)]
        imports = [timed([python, "-c", "import qa"], env)[0] for _ in range(args.repeats)]
        helps = [timed([python, "-m", "qa", "--help"], env)[0] for _ in range(args.repeats)]
    print(
        f"{args.images:,} digit PNGs at 32 px, resnet18 (random weights), batch "
        f"{args.batch_size}, {args.threads} threads, {args.repeats} paired repeats; "
        "wall s and peak RSS MB"
    )
    for name, label in (("floor", "plain loop"), ("cold", "qa run cold"), ("warm", "qa run warm")):
        print(f"  {label:<12} {summary(rows[name])} s   {summary(rss[name])} MB")
    ratios = [c / f for c, f in zip(rows["cold"], rows["floor"], strict=True)]
    warm_share = [w / c for w, c in zip(rows["warm"], rows["cold"], strict=True)]
    base = statistics.median(bare)
    print(f"  warm / cold {summary(warm_share)}")
    print(f"  import qa   {statistics.median(imports) - base:.3f} s over a bare interpreter")
    print(f"  qa --help   {statistics.median(helps) - base:.3f} s over a bare interpreter")
    print(json.dumps({"cold_vs_floor_each": [round(r, 3) for r in ratios]}))
    print(f"cold_vs_floor: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
