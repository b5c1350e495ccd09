"""Does a cold `qa run` with many views cost one decode pass plus the views' own work?

The data: --images JPEGs (quality 90, 256x256) in an ImageFolder of 10 classes, random crops
and flips of scikit-learn's two sample photos (china.jpg, flower.jpg), seed 0. The model: a
random-weight torchvision mobilenet_v3_small at width_mult 0.25 (ARCH: the smallest CNN qa
can load, as qa's architectures are torchvision's) at 224 px (resize 256, centre crop 224),
saved as a qa checkpoint. The suite: one `corruption_accuracy` check over the 15 families of
qa.perturb.MCE_DEFAULT at severities 1-5, which also reads the clean view: 76 views.

Measured, --repeats times each (median and range):
  qa     `qa run SUITE CKPT --out DIR --cache-dir FRESH --quiet` in a subprocess, wall time
         from start to exit; the subprocess is a small wrapper that imports `qa.cli`, counts
         every "open" audit event on a file under the data folder (sys.addaudithook; forked
         loader workers append to the same log), calls `qa.cli.main` and reports its exit
         code and peak RSS.
  ideal  in this process, with qa's own functions, the same batch size and torch's default
         threads (as qa uses): one decode pass (read, qa.preprocess.load_rgb, to_unit_tensor)
         of every image into batches, then per view and batch qa.perturb.apply (perturbation
         time) and the model's normalisation and forward under inference_mode (model time),
         each timed alone. ideal = decode + sum of perturbation + sum of model times.
Target: qa / ideal <= 1.10, and every file read once (reads per file, mean and max).

--qa-src PATH puts that checkout's `qa` package first on the path, for the subprocess and
for this process, so one bench measures any version (default: this repository):

    .venv/bin/python bench/views_one_pass.py [--images 1000] [--batch-size 64] [--repeats 1]
        [--qa-src PATH] [--no-cache] [--device cpu] [--precision fp32] [--threads N]

The last line is the headline, `views_one_pass_ratio: <qa / ideal>`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("china.jpg", "flower.jpg")
SEVERITIES = [1, 2, 3, 4, 5]
# The smallest CNN qa can load (its architectures are torchvision's): mobilenet_v3_small at a
# quarter width, which here took a third to a half of full width's time at 224 px.
ARCH, ARCH_KWARGS = "mobilenet_v3_small", {"width_mult": 0.25}

# Run by `python -c` in the qa subprocess: argv = result file, data folder, qa's argv (JSON).
# Opens are logged one path a line through an O_APPEND descriptor, which forked workers share.
WRAPPER = r"""
import json, os, resource, sys, time
out, data, argv = sys.argv[1], os.path.abspath(sys.argv[2]) + os.sep, json.loads(sys.argv[3])
log = os.open(out + ".opens", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(data):
            os.write(log, (path + "\n").encode())

sys.addaudithook(hook)
from qa.cli import main
start, cpu = time.perf_counter(), time.process_time()
rc = main(argv)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(out, "w") as f:
    json.dump({"rc": rc, "seconds": seconds, "cpu": cpu, "maxrss_kb": peak}, f)
sys.exit(rc)
"""


def use_qa_src(qa_src: str | Path) -> Path:
    """Put `qa_src` first on this process's path (call before importing qa); its absolute path."""
    path = Path(qa_src).resolve()
    if not (path / "qa" / "__init__.py").is_file():
        raise SystemExit(f"--qa-src {path}: no qa package there")
    sys.path.insert(0, str(path))
    return path


def set_threads(threads: int | None) -> None:
    """Give torch `threads` threads here and in every subprocess (call before importing torch);
    None keeps torch's default, one per core. On a shared machine 1 avoids OpenMP threads
    waiting at every barrier for a core another process holds."""
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)


def qa_env(qa_src: Path, **extra: str) -> dict:
    """The environment for a subprocess importing qa from `qa_src`, plus `extra` variables."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(qa_src), env.get("PYTHONPATH")]))
    return env


def write_photos(root: Path, n: int, size: int, classes: int, ext: str, seed: int = 0) -> list:
    """`n` images of size x size under root/cNNN/, cycling through `classes` classes: random
    square crops (half to all of the shorter side) of the sample photos, resized, flipped half
    the time; JPEG at quality 90 or PNG by `ext`. Returns the class names."""
    import importlib.util

    import numpy as np
    from PIL import Image

    # The files themselves, without importing sklearn.datasets (and with it scipy and
    # sklearn's own OpenMP runtime) into the process that times torch.
    (package,) = importlib.util.find_spec("sklearn").submodule_search_locations
    photos = [
        Image.open(Path(package, "datasets", "images", name)).convert("RGB") for name in PHOTOS
    ]
    rng = np.random.default_rng(seed)
    names = [f"c{c:03d}" for c in range(classes)]
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = photos[i % len(photos)]
        short = min(photo.size)
        side = int(rng.integers(short // 2, short + 1))
        x = int(rng.integers(0, photo.width - side + 1))
        y = int(rng.integers(0, photo.height - side + 1))
        image = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = root / names[i % classes] / f"{i:06d}.{ext}"
        if ext == "jpg":
            image.save(path, quality=90)
        else:
            image.save(path)
    return names


def write_checkpoint(path: Path, names: list, crop: int, resize: int) -> None:
    """The bench's small CNN, a random-weight (seed 0) ARCH with one output per class, as a qa
    checkpoint."""
    import torch

    from qa.architectures import build_model
    from qa.checkpoint import save_checkpoint
    from qa.preprocess import make_preprocessing

    torch.manual_seed(0)
    kwargs = {"num_classes": len(names), **ARCH_KWARGS}
    save_checkpoint(
        path,
        {
            "arch": ARCH,
            "arch_kwargs": kwargs,
            "class_names": names,
            "preprocessing": make_preprocessing(crop, resize),
            "state_dict": build_model(ARCH, kwargs).state_dict(),
        },
    )


def write_suite(path: Path, data: Path, perturbations: list, batch_size: int) -> None:
    """A suite of one corruption_accuracy check (it also reads the clean view), gating nothing."""
    import yaml

    check = {
        "kind": "corruption_accuracy",
        "perturbations": list(perturbations),
        "severities": SEVERITIES,
        "min": 0.0,
    }
    suite = {
        "name": "bench",
        "data": {"eval": str(data)},
        "defaults": {"batch_size": batch_size},
        "checks": [check],
    }
    path.write_text(yaml.safe_dump(suite, sort_keys=False))


def make_inputs(work: Path, images: int, batch_size: int, perturbations=None) -> dict:
    """The JPEG ImageFolder, the mobilenet_v3_small checkpoint and the suite, under `work`."""
    from qa.perturb import MCE_DEFAULT

    perturbations = list(MCE_DEFAULT if perturbations is None else perturbations)
    data = work / "eval"
    names = write_photos(data, images, 256, 10, "jpg")
    write_checkpoint(work / "model.pt", names, 224, 256)
    write_suite(work / "suite.yaml", data, perturbations, batch_size)
    return {
        "data": data,
        "ckpt": work / "model.pt",
        "suite": work / "suite.yaml",
        "n": images,
        "perturbations": perturbations,
    }


def run_qa(qa_src: Path, inputs: dict, work: Path, options: list, tag: str) -> dict:
    """One `qa run` of the inputs in a fresh wrapped subprocess: exit code, wall seconds (outside
    and inside `qa.cli.main`), peak RSS, and the opens of each data file."""
    out = work / f"out-{tag}"
    argv = ["run", str(inputs["suite"]), str(inputs["ckpt"]), "--out", str(out), "--quiet"]
    result = work / f"{tag}.json"
    command = [sys.executable, "-c", WRAPPER, str(result), str(inputs["data"])]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, json.dumps(argv + options)],
        env=qa_env(qa_src),
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1) or not result.exists():
        raise SystemExit(f"qa run exited {done.returncode}:\n{done.stderr[-3000:]}")
    measured = json.loads(result.read_text())
    log = Path(f"{result}.opens")
    opens = Counter(log.read_text().splitlines()) if log.exists() else Counter()
    return {**measured, "wall": wall, "opens": opens, "out": out}


def reads_per_file(opens: Counter, data: Path) -> tuple[float, int]:
    """Mean and largest number of opens per file of the data folder."""
    files = [str(p.resolve()) for p in data.rglob("*") if p.is_file()]
    counts = [opens.get(f, 0) for f in files]
    return sum(counts) / len(counts), max(counts)


def ideal(inputs: dict, batch_size: int, device: str, precision: str = "fp32") -> dict:
    """One decode pass, then every view's perturbation and model forward, each timed alone;
    the forward at `precision` as qa runs it (qa.precision: autocast, channels_last)."""
    import numpy as np
    import torch

    from qa.checkpoint import load_model
    from qa.perturb import apply, sample_key
    from qa.precision import autocast, prepare, to_input
    from qa.preprocess import load_rgb, normalize, to_unit_tensor

    device = torch.device(device)
    model = load_model(inputs["ckpt"])
    module = prepare(model.module, device, precision)
    norm, to_unit = normalize(model.preprocessing), to_unit_tensor(model.preprocessing)
    data = Path(inputs["data"])
    files = sorted(p for p in data.rglob("*") if p.is_file())
    keys = [sample_key(str(f.relative_to(data))) for f in files]
    spent = {"decode": np.zeros(2), "perturb": np.zeros(2), "model": np.zeros(2)}
    start = clock(device)
    batches = []
    for i in range(0, len(files), batch_size):
        images = torch.stack([to_unit(load_rgb(f)) for f in files[i : i + batch_size]])
        batches.append((to_input(images, device, precision), keys[i : i + batch_size]))
    spent["decode"] += clock(device) - start
    views = [None] + [(p, s) for p in inputs["perturbations"] for s in SEVERITIES]
    with torch.inference_mode(), autocast(device, precision):
        module(norm(batches[0][0][:2]))  # warm-up: the first call pays for lazy initialisation
        for view in views:
            for images, batch_keys in batches:
                t0 = clock(device)
                if view is not None:
                    images = apply(view[0], images, view[1], batch_keys)
                t1 = clock(device)
                module(norm(images)).float().cpu()
                spent["perturb"] += t1 - t0
                spent["model"] += clock(device) - t1
    total = sum(spent.values())
    return {
        **{k: float(v[0]) for k, v in spent.items()},
        "total": float(total[0]),
        "cpu": float(total[1]),
        "views": len(views),
    }


def clock(device):
    """(wall, process CPU) seconds now, after the device's queued work."""
    import numpy as np
    from perturb_cost import sync

    sync(device)
    return np.array([time.perf_counter(), time.process_time()])


def spread(values: list[float]) -> str:
    """Median and range of repeated measurements, in seconds."""
    return f"{statistics.median(values):.1f}s (range {min(values):.1f}-{max(values):.1f})"


def main() -> None:
    """Build the inputs, time qa cold runs and the ideal one-pass work, print the ratio last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--qa-src", default=str(ROOT))
    parser.add_argument("--no-cache", action="store_true", help="qa run --no-cache")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision", default="fp32", help="fp32, bf16 or fp16 (qa run --precision; CUDA for fp16)"
    )
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for qa and this process")
    args = parser.parse_args()
    set_threads(args.threads)
    qa_src = use_qa_src(args.qa_src)
    qa_runs, ideals = [], []
    with tempfile.TemporaryDirectory(prefix="qa-bench-views-") as tmp:
        work = Path(tmp)
        inputs = make_inputs(work, args.images, args.batch_size)
        import torch

        print(
            f"qa from {qa_src}; {args.images} JPEGs 256 px -> 224, {ARCH} {ARCH_KWARGS}, "
            f"batch {args.batch_size}, {args.device} {args.precision}, {torch.get_num_threads()} threads"
        )
        for r in range(args.repeats):
            cache = ["--no-cache"] if args.no_cache else ["--cache-dir", str(work / f"cache-{r}")]
            options = [*cache, "--device", args.device]
            if args.precision != "fp32":  # a qa before issue 13 has no --precision
                options += ["--precision", args.precision]
            qa_runs.append(run_qa(qa_src, inputs, work, options, f"r{r}"))
            ideals.append(ideal(inputs, args.batch_size, args.device, args.precision))
        mean_reads, max_reads = reads_per_file(qa_runs[0]["opens"], inputs["data"])
    first = ideals[0]
    print(
        f"ideal   {spread([i['total'] for i in ideals])}: {first['views']} views; "
        f"decode {first['decode']:.1f}s, perturb {first['perturb']:.1f}s, "
        f"model {first['model']:.1f}s (first repeat)"
    )
    print(
        f"qa run  {spread([q['wall'] for q in qa_runs])} wall "
        f"({spread([q['seconds'] for q in qa_runs])} inside qa.cli.main), "
        f"peak RSS {qa_runs[0]['maxrss_kb'] / 1024:.0f} MiB"
    )
    cpu_ratio = statistics.median(q["cpu"] for q in qa_runs) / statistics.median(
        i["cpu"] for i in ideals
    )
    print(f"CPU time qa.cli.main / ideal {cpu_ratio:.3f} (less disturbed by a shared machine)")
    print(f"reads per file: mean {mean_reads:.2f}, max {max_reads} (target 1)")
    ratio = statistics.median(q["wall"] for q in qa_runs) / statistics.median(
        i["total"] for i in ideals
    )
    print(f"qa / ideal {ratio:.3f} (target <= 1.10)")
    print(f"views_one_pass_ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
