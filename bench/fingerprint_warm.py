"""The warm-run data fingerprint against one decode pass over the same split.

Writes N small JPEGs (default 50,000, 64x64, seeded noise over a per-class pattern, so every
file is distinct) into a temporary ImageFolder, waits until they have settled (qa.data_index
remembers no file changed less than SETTLE_NS before it was read), then times, in one thread:

  decode pass   qa.data.read_bytes + qa.preprocess.decode_bytes + to_unit_tensor (resize and
                crop to 224) for every file; measured on an evenly spread subset
                (--decode-subset, default 5,000) and scaled to N
  cold          qa.data.content_fingerprint with an empty cache folder: every file read and
                hashed, the index written
  warm          the same call again: the index vouches for every file, which is only stat()ed

The files sit in the page cache throughout (they were just written), as on a warm run.
The last line is the warm fingerprint's share of the decode pass (the target is <= 0.10).

    .venv/bin/python bench/fingerprint_warm.py [--n 50000] [--decode-subset 5000]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from qa import data, data_index
from qa.data import content_fingerprint, load_dataset
from qa.preprocess import decode_bytes, make_preprocessing, to_unit_tensor
from qa.suite_models import DataSpec

CLASSES = 10


def write_images(root: Path, n: int, size: int = 64, seed: int = 0) -> None:
    """n distinct JPEGs of `size` pixels under root/<class>/."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    patterns = rng.integers(40, 216, (CLASSES, size, size, 3)).astype(np.int16)
    for label in range(CLASSES):
        (root / f"class{label}").mkdir(parents=True)
    for i in range(n):
        label = i % CLASSES
        noise = rng.integers(-30, 31, (size, size, 3))
        pixels = np.clip(patterns[label] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"class{label}" / f"img-{i:06d}.jpg", quality=90)


def decode_pass_seconds(dataset, subset: int) -> float:
    """Seconds to read, decode and resize every sample, from an evenly spread subset."""
    transform = to_unit_tensor(make_preprocessing(224))
    picks = np.linspace(0, len(dataset.samples) - 1, min(subset, len(dataset.samples)))
    samples = [dataset.samples[int(i)] for i in picks]
    start = time.perf_counter()
    for sample in samples:
        transform(decode_bytes(data.read_bytes(sample)))
    return (time.perf_counter() - start) * len(dataset.samples) / len(samples)


def counted_reads() -> list:
    """Count the image reads from here on (qa.data.read_bytes is the one reader)."""
    seen = []
    real = data.read_bytes

    def counting(sample):
        seen.append(1)
        return real(sample)

    data.read_bytes = counting
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--decode-subset", type=int, default=5_000)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "eval", Path(tmp) / "cache"
        start = time.perf_counter()
        write_images(root, args.n)
        written = time.time_ns()
        print(f"wrote {args.n} 64x64 JPEGs in {time.perf_counter() - start:.1f} s")
        dataset = load_dataset(DataSpec(path=str(root)))
        time.sleep(max(0.0, (written + data_index.SETTLE_NS - time.time_ns()) / 1e9 + 0.5))

        decode = decode_pass_seconds(dataset, args.decode_subset)
        print(f"decode pass (read + decode + resize to 224), scaled: {decode:.2f} s")
        reads = counted_reads()
        start = time.perf_counter()
        cold_fp = content_fingerprint(dataset, cache)
        cold = time.perf_counter() - start
        print(f"cold fingerprint: {cold:.2f} s, {len(reads)} files read")
        reads.clear()
        start = time.perf_counter()
        warm_fp = content_fingerprint(dataset, cache)
        warm = time.perf_counter() - start
        print(f"warm fingerprint: {warm:.3f} s, {len(reads)} files read")
        if warm_fp != cold_fp:
            raise SystemExit("the warm fingerprint differs from the cold one")
        print(f"warm_fingerprint_vs_decode: {warm / decode:.4f}")


if __name__ == "__main__":
    main()
