"""Cost of making perturbed images against the model forward they feed, per family.

On the demo data (the digits test split written at --size, 270 images) and a torchvision
resnet18 at that size, for every built-in perturbation at severities 1-5: the time spent in
`qa.perturb.apply` and the time of the model forward over the data, as the engine will run
them (inference mode, batched; the model's normalisation counted as model time). Each time is
the best of --repeats runs, as the machine may be shared.
Target: perturbation time at most 15% of model time over all (family, severity) views.
Every registered perturbation is measured (ImageNet-C's 19, the geometric ones), or only those
--perturbations names (comma-separated).

    .venv/bin/python bench/perturb_cost.py [--size 32] [--batch 64] [--device cpu] [--repeats 3]
        [--perturbations glass_blur,snow,frost,spatter,speckle_noise]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torchvision

from qa.perturb import PERTURBATIONS, SEVERITIES, apply, check_name, sample_key
from qa.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_rgb,
    make_preprocessing,
    normalize,
    to_unit_tensor,
)
from trainer.digits import write_digits


def load_batches(size: int, batch: int) -> list[tuple[torch.Tensor, list[int]]]:
    """The digits test split as [0, 1] batches with their per-sample keys."""
    with tempfile.TemporaryDirectory() as tmp:
        write_digits(tmp, size=size, seed=0)
        files = sorted(Path(tmp, "test").rglob("*.png"))
        decode = to_unit_tensor(make_preprocessing(size))
        images = torch.stack([decode(load_rgb(f)) for f in files])
        keys = [sample_key(str(f.relative_to(tmp))) for f in files]
    return [(images[i : i + batch], keys[i : i + batch]) for i in range(0, len(files), batch)]


def sync(device: torch.device) -> None:
    """Wait for queued device work, so the clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(repeats: int, run, device: torch.device) -> float:
    """The fastest of `repeats` timed runs of `run()`: the least disturbed by other load."""
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def measure(
    batches, model, norm, device, repeats: int, names: list[str]
) -> tuple[dict[str, float], float]:
    """Seconds to perturb all batches, per name summed over severities; seconds of one forward
    pass over all batches (the same for every view: a forward's cost does not depend on pixels).
    """
    made = {}
    for name in names:
        made[name] = sum(
            best_of(repeats, lambda n=name, s=s: [apply(n, x, s, k) for x, k in batches], device)
            for s in SEVERITIES
        )
    forward = best_of(repeats, lambda: [model(norm(x)) for x, _ in batches], device)
    return made, forward


def main() -> None:
    """Print the per-family table, the worst families, and the overall ratio last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--perturbations", default=",".join(PERTURBATIONS))
    args = parser.parse_args()
    names = [check_name(n) for n in args.perturbations.split(",")]
    device = torch.device(args.device)
    batches = [(x.to(device), k) for x, k in load_batches(args.size, args.batch)]
    model = torchvision.models.resnet18(num_classes=10).to(device).eval()
    norm = normalize({"mean": IMAGENET_MEAN, "std": IMAGENET_STD})
    with torch.inference_mode():
        for images, keys in batches[:2]:  # warm-up: first calls pay for lazy initialisation
            model(norm(apply("gaussian_noise", images, 1, keys)))
        made, forward = measure(batches, model, norm, device, args.repeats, names)
    n = sum(len(k) for _, k in batches)
    views = len(SEVERITIES)
    print(
        f"{n} images {args.size}x{args.size}, batch {args.batch}, {device}, best of {args.repeats}"
    )
    print(f"model forward over all images: {forward * 1e3:.1f} ms per view")
    print(f"{'family':<18} {'perturb ms':>10} {'model ms':>9} {'ratio':>6}  (severities 1-5)")
    ranked = sorted(made, key=lambda k: -made[k])
    model_ms = views * forward * 1e3
    for name in ranked:
        ratio = made[name] * 1e3 / model_ms
        print(f"{name:<18} {made[name] * 1e3:10.1f} {model_ms:9.1f} {ratio:6.3f}")
    print(f"worst families: {', '.join(ranked[:3])}; target: perturb_vs_model <= 0.15")
    print(f"perturb_vs_model: {sum(made.values()) / (len(made) * views * forward):.3f}")


if __name__ == "__main__":
    main()
