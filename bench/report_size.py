"""How big the reports of a 10,000-image run are (issue 14: result.html <= 2 MB).

Writes --images real digit PNGs (scikit-learn's digits at 32 px, each drawn again with a
random shift of up to 2 px and a little noise so that no two files are the same bytes), then
gates the flawed demo model with suites/release.yaml on them against the deployed one, so the
report carries every kind of evidence at its largest: thousands of mistakes and negative flips,
perturbation strips, near-duplicate pairs, per-class tables. Needs `make demo` first (its
checkpoints and data/digits/train).

    .venv/bin/python bench/report_size.py [--images 10000] [--keep DIR]

Prints each report file's size; the last line is `result_html_bytes: N`.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parents[1]
CANDIDATE, BASELINE = ROOT / "checkpoints" / "flawed.pt", ROOT / "checkpoints" / "baseline.pt"


def write_images(out: Path, n: int, seed: int = 0) -> None:
    """`n` distinct 32 px PNGs of real digits under out/<digit>/."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for i in range(n):
        k = i % len(digits.images)
        big = np.kron(digits.images[k] / 16.0, np.ones((4, 4)))  # 8 px -> 32 px, as the demo
        dy, dx = rng.integers(-2, 3, size=2)
        img = np.roll(big, (int(dy), int(dx)), axis=(0, 1)) + rng.normal(0, 0.02, big.shape)
        pixels = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        folder = out / str(digits.target[k])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "L").convert("RGB").save(folder / f"d{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="keep the data and reports here")
    args = parser.parse_args()
    if not (CANDIDATE.is_file() and BASELINE.is_file()):
        sys.exit(f"error: {CANDIDATE} and {BASELINE} not found: run `make demo` first")
    work = args.keep or Path(tempfile.mkdtemp(prefix="qa-report-size-"))
    data, out = work / "eval", work / "reports"
    if not data.is_dir():
        write_images(data, args.images)
    suite = work / "suite.yaml"
    text = (ROOT / "suites" / "release.yaml").read_text()
    text = text.replace("../data/digits/test", str(data))
    text = text.replace("../data/", str(ROOT / "data") + "/")
    text = text.replace("../checkpoints/", str(ROOT / "checkpoints") + "/")
    suite.write_text(text)
    command = [sys.executable, "-m", "qa", "run", str(suite), str(CANDIDATE), "--quiet"]
    command += ["--out", str(out), "--cache-dir", str(work / "cache")]
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode not in (0, 1):
        sys.exit(f"error: qa run exited {done.returncode}")
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    for name, size in sizes.items():
        print(f"{name}: {size:,} bytes")
    if args.keep is None:
        shutil.rmtree(work)
    print(f"result_html_bytes: {sizes['result.html']}")


if __name__ == "__main__":
    main()
