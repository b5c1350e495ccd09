"""Data-profile throughput and the great-expectations overhead of each data check.

Writes N images (default 20,000) into a temporary ImageFolder: scikit-learn's real digits
upscaled to 32x32 and replicated with small seeded pixel changes, so every file is distinct.
Profiles them with one process and with the default pool, then runs every data check with its
example parameters over the profile (eval = half, train = the other half), timing the time spent
inside great-expectations (qa.gx.run) apart from the check's own work. The one-time import of
great-expectations is reported separately.

    .venv/bin/python bench/profile_throughput.py [--n 20000] [--workers N]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import qa.checks.data  # noqa: F401  (registers the family)
from qa import gx
from qa.checks import REGISTRY
from qa.data import scan_image_folder
from qa.evidence import Evidence
from qa.profile import profile_samples


def write_images(root: Path, n: int, seed: int = 0) -> None:
    """Write n distinct 32x32 grey PNGs of real digits under root/<digit>/."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    base = np.stack(
        [
            np.asarray(Image.fromarray(np.uint8(im * 15.9)).resize((32, 32), Image.BILINEAR))
            for im in digits.images
        ]
    ).astype(np.int16)
    for label in range(10):
        (root / str(label)).mkdir(parents=True)
    for i in range(n):
        j = i % len(base)
        noisy = np.clip(base[j] + rng.integers(-8, 9, base[j].shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(root / str(digits.target[j]) / f"img-{i:05d}.png")


def timed_gx():
    """Wrap qa.gx.run to add up the seconds spent in great-expectations."""
    spent = [0.0]
    run = gx.run

    def wrapper(frame, expectations):
        start = time.perf_counter()
        try:
            return run(frame, expectations)
        finally:
            spent[0] += time.perf_counter() - start

    gx.run = wrapper
    return spent


def main() -> None:
    """Print profiling throughput, then per-check total and GX seconds; the headline last."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="images to write and profile")
    ap.add_argument("--workers", type=int, default=None, help="pool size (default: qa's choice)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        start = time.perf_counter()
        write_images(root, args.n)
        print(f"wrote {args.n} images in {time.perf_counter() - start:.1f} s")
        names, samples = scan_image_folder(root)
        start = time.perf_counter()
        profile_samples(samples[: args.n // 10], root, names, "eval", workers=1)
        serial = (args.n // 10) / (time.perf_counter() - start)
        print(f"one process: {serial:.0f} images/s (on {args.n // 10} images)")
        start = time.perf_counter()
        frame = profile_samples(samples, root, names, "eval", workers=args.workers)
        seconds = time.perf_counter() - start
    rate = len(frame) / seconds
    print(f"default pool: {len(frame)} images in {seconds:.2f} s = {rate:.0f} images/s")
    half = frame.iloc[::2].reset_index(drop=True)
    train = frame.iloc[1::2].reset_index(drop=True).assign(split="train")
    evidence = Evidence(names, np.zeros(0, int), [], profiles={"eval": half, "train": train})
    start = time.perf_counter()
    gx.expectation_names()
    print(f"great-expectations import (once per run): {time.perf_counter() - start:.2f} s")
    spent = timed_gx()
    print(
        f"{'check':24} {'total ms':>9} {'in GX ms':>9}  status  ({len(half)} eval, {len(train)} train)"
    )
    for kind, spec in sorted(REGISTRY.items()):
        if spec.family != "data":
            continue
        params = spec.params.model_validate(spec.params.example, strict=True)
        spent[0] = 0.0
        start = time.perf_counter()
        result = spec.run(evidence, params)
        total = time.perf_counter() - start
        print(f"{kind:24} {total * 1e3:9.1f} {spent[0] * 1e3:9.1f}  {result.status}")
    print(f"profile_images_per_s: {rate:.0f}")


if __name__ == "__main__":
    main()
