"""Write a manifest CSV of an ImageFolder with one metadata column, `ink`, to slice by.

    python examples/ink_manifest.py data/digits/test data/digits/test-ink.csv

`ink` is how much of the image is drawn (its mean brightness, inverted for dark-on-light
images) in thirds of the folder: light, medium or heavy. Faint or heavy strokes are a real
way a digits model can fail on part of its data while its overall accuracy looks fine:
suites/slices.yaml gates every third (`slices: {column: ink}`) and the gap between the worst
third and the whole (`slice_gap`). Paths in the CSV are relative to the folder, which the
suite names as the manifest's `root`.
"""

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from qa.io import atomic_path

LEVELS = ("light", "medium", "heavy")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}


def ink_levels(folder: Path) -> list[tuple[str, str, str]]:
    """(path relative to `folder`, class folder name, ink level) for every image, in path
    order; levels split the images' ink amounts at their terciles."""
    images = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    ink = []
    for path in images:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float64) / 255
        mean = pixels.mean()
        ink.append(min(mean, 1 - mean))  # the drawn share, whichever way round the colours are
    cuts = np.quantile(ink, [1 / 3, 2 / 3]) if ink else []
    return [
        (p.relative_to(folder).as_posix(), p.parent.name, LEVELS[int(np.searchsorted(cuts, x))])
        for p, x in zip(images, ink, strict=True)
    ]


def main() -> None:
    """Write the manifest of the folder given on the command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="an ImageFolder: one subfolder per class")
    ap.add_argument("out", type=Path, help="the CSV file to write")
    args = ap.parse_args()
    rows = ink_levels(args.folder)
    with atomic_path(args.out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "ink"])
        writer.writerows(rows)
    print(f"{args.out}: {len(rows)} images, ink {', '.join(LEVELS)}")


if __name__ == "__main__":
    main()
