"""ONNX Runtime against torch: inference time of the demo's candidate on the demo's eval data.

The checkpoint (default checkpoints/candidate.pt, `make demo`'s) is exported to a temporary
file by `trainer export --onnx`'s own code; the eval images (default data/digits/test, else
written to a temporary folder as `trainer data digits` does, at the checkpoint's crop size)
are decoded and normalised once with qa's preprocessing, so only the forward passes are timed.
Both models are loaded as `qa run` loads them (qa.formats.load_any) and run over every image
in batches of --batch-size as qa's engine runs them: torch under inference_mode, onnxruntime
through qa.onnx_model.OnnxModule (CPU provider, its default threads; the numpy round trip
included). After one untimed pass each, every repeat times both, the order swapped every other
repeat.

    .venv/bin/python bench/onnx_vs_torch.py [--checkpoint checkpoints/candidate.pt]
        [--data data/digits/test] [--batch-size 256] [--repeats 5]

Prints each repeat's seconds, each side's median and spread (min-max), the largest logit
difference and the predictions that differ; the last line is the headline, the median of the
per-repeat ratios ORT seconds / torch seconds: `onnx_vs_torch: <ratio>` (below 1: ORT faster).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qa.data import scan_image_folder
from qa.formats import load_any
from qa.inference import ImageFiles
from qa.preprocess import normalize
from trainer.digits import write_digits
from trainer.export import export_onnx

ROOT = Path(__file__).resolve().parents[1]


def eval_images(folder: Path, preprocessing: dict) -> torch.Tensor:
    """Every image of an ImageFolder, decoded, resized, cropped and normalised: (N, 3, H, W)."""
    _, samples = scan_image_folder(folder)
    files = ImageFiles(samples, preprocessing)
    return normalize(preprocessing)(torch.stack([files[i][0] for i in range(len(files))]))


def timed(module, images: torch.Tensor, batch_size: int) -> tuple[float, np.ndarray]:
    """Seconds for one pass over `images` in batches, and the logits."""
    started = time.perf_counter()
    with torch.inference_mode():
        logits = [module(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return time.perf_counter() - started, torch.cat(logits).numpy()


def main() -> None:
    """Export, decode once, time both runtimes over the repeats; print the headline last."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "candidate.pt")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "digits" / "test")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(args.checkpoint, Path(tmp) / "model.onnx")
        models = {"torch": load_any(args.checkpoint), "onnx": load_any(Path(tmp) / "model.onnx")}
        preprocessing = models["torch"].preprocessing
        folder = args.data
        if not folder.is_dir():
            write_digits(Path(tmp) / "digits", size=int(preprocessing["crop"]), seed=0)
            folder = Path(tmp) / "digits" / "test"
        images = eval_images(folder, preprocessing)
        print(
            f"{args.checkpoint.name}: {models['torch'].arch}, {len(images)} images of "
            f"{tuple(images.shape[1:])}, batch {args.batch_size}, torch threads "
            f"{torch.get_num_threads()}"
        )
        logits = {name: timed(m.module, images, args.batch_size)[1] for name, m in models.items()}
        seconds: dict[str, list[float]] = {"torch": [], "onnx": []}
        for r in range(args.repeats):
            for name in ("torch", "onnx") if r % 2 == 0 else ("onnx", "torch"):
                seconds[name].append(timed(models[name].module, images, args.batch_size)[0])
            print(
                f"repeat {r + 1}: torch {seconds['torch'][-1]:.3f} s, ORT {seconds['onnx'][-1]:.3f} s"
            )
    for name, values in seconds.items():
        print(
            f"{name:5}  median {statistics.median(values):.3f} s  "
            f"(min {min(values):.3f}, max {max(values):.3f})"
        )
    diff = np.abs(logits["onnx"] - logits["torch"]).max()
    changed = int((logits["onnx"].argmax(1) != logits["torch"].argmax(1)).sum())
    print(f"largest |logit difference| {diff:.3g}; predictions that differ: {changed}")
    ratios = [o / t for o, t in zip(seconds["onnx"], seconds["torch"], strict=True)]
    print(f"onnx_vs_torch: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
