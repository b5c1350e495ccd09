"""Peak memory of `qa run` over many views, against a plain one-view loop on the same data.

The data: --images PNGs of --size px (default 10,000 of 32x32) in an ImageFolder of --classes
classes (default 1,000), crops of scikit-learn's sample photos (views_one_pass.write_photos).
The model: views_one_pass's small CNN with a 1,000-way head, at 32 px. The suite: one
corruption_accuracy check over 6 families cheap at 32 px (PERTURBATIONS) at severities 1-5,
and the clean view: 31 views of (N, 1000) float32 logits, 40 MB each at the default size.

Measured, each in a fresh subprocess importing qa from --qa-src (default: this repository):
  qa     `qa run SUITE CKPT --out DIR --cache-dir FRESH --quiet` (or --no-cache), through
         views_one_pass's wrapper, which reports the process's peak RSS (ru_maxrss).
  floor  a plain loop: load the checkpoint (qa.checkpoint.load_model), decode the same images
         in batches of the same size (load_rgb, to_unit_tensor), normalise, one forward pass
         each under inference_mode, keep the (N, 1000) float32 logits; its peak RSS.
Target: qa - floor <= 300 MB (MB = 2**20 bytes): memory must not grow with the number of views.

    .venv/bin/python bench/memory_views.py [--images 10000] [--classes 1000] [--size 32]
        [--batch-size 256] [--qa-src PATH] [--no-cache] [--threads N]

The last line is the headline, `memory_views_extra_mb: <qa - floor>`.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from views_one_pass import (
    ROOT,
    qa_env,
    run_qa,
    set_threads,
    use_qa_src,
    write_checkpoint,
    write_photos,
    write_suite,
)

# Cheap at 32 px, so the run is dominated by the model and the logits it keeps.
PERTURBATIONS = [
    "gaussian_noise",
    "brightness",
    "contrast",
    "saturate",
    "pixelate",
    "jpeg_compression",
]


def floor(inputs: dict) -> dict:
    """The plain one-view loop: seconds, and this process's peak RSS in KiB."""
    import numpy as np
    import torch

    from qa.checkpoint import load_model
    from qa.preprocess import load_rgb, normalize, to_unit_tensor

    start = time.perf_counter()
    model = load_model(inputs["ckpt"])
    to_unit, norm = to_unit_tensor(model.preprocessing), normalize(model.preprocessing)
    files = sorted(p for p in Path(inputs["data"]).rglob("*") if p.is_file())
    logits = np.empty((len(files), len(model.class_names)), np.float32)
    size = inputs["batch_size"]
    with torch.inference_mode():
        for i in range(0, len(files), size):
            images = torch.stack([to_unit(load_rgb(f)) for f in files[i : i + size]])
            logits[i : i + size] = model.module(norm(images)).float().numpy()
    return {
        "seconds": time.perf_counter() - start,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def run_floor(qa_src: Path, inputs: dict) -> dict:
    """`floor` in a fresh interpreter importing qa from `qa_src`; its JSON result."""
    command = [sys.executable, __file__, "--worker", "--inputs", json.dumps(inputs)]
    done = subprocess.run(
        command, env=qa_env(qa_src), cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"floor failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Build the inputs, measure qa and the floor in fresh processes, print the difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--qa-src", default=str(ROOT))
    parser.add_argument("--no-cache", action="store_true", help="qa run --no-cache")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both processes")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(floor(json.loads(args.inputs))))
        return
    set_threads(args.threads)
    qa_src = use_qa_src(args.qa_src)
    with tempfile.TemporaryDirectory(prefix="qa-bench-memory-") as tmp:
        work = Path(tmp)
        data = work / "eval"
        names = write_photos(data, args.images, args.size, args.classes, "png")
        write_checkpoint(work / "model.pt", names, args.size, args.size)
        write_suite(work / "suite.yaml", data, PERTURBATIONS, args.batch_size)
        inputs = {
            "data": str(data),
            "ckpt": str(work / "model.pt"),
            "suite": str(work / "suite.yaml"),
            "batch_size": args.batch_size,
        }
        views = 1 + len(PERTURBATIONS) * 5
        logits_mb = views * args.images * args.classes * 4 / 2**20
        print(
            f"qa from {qa_src}; {args.images} PNGs {args.size} px, {args.classes} classes, "
            f"{views} views ({logits_mb:.0f} MB of logits), batch {args.batch_size}"
        )
        plain = run_floor(qa_src, inputs)
        cache = ["--no-cache"] if args.no_cache else ["--cache-dir", str(work / "cache")]
        qa = run_qa(qa_src, inputs, work, cache, "qa")
    floor_mb, qa_mb = plain["maxrss_kb"] / 1024, qa["maxrss_kb"] / 1024
    print(f"floor   peak RSS {floor_mb:.0f} MB, {plain['seconds']:.1f}s")
    print(f"qa run  peak RSS {qa_mb:.0f} MB, {qa['wall']:.1f}s wall")
    print(f"qa - floor {qa_mb - floor_mb:.0f} MB (target <= 300)")
    print(f"memory_views_extra_mb: {qa_mb - floor_mb:.0f}")


if __name__ == "__main__":
    main()
