"""Draw docs/corruptions.png: every ImageNet-C corruption qa has, at severities 1-5.

One row per corruption (registration order: the paper's 15, then its 4 held-out ones), the
clean image first; ImageNet-C's ladder applied at --size px to a crop of scikit-learn's
sample photograph of a Chinese temple (so pixel-valued parameters are scaled from 224 px to
it). The PNG is palette-quantised to stay small.

    .venv/bin/python docs/corruption_strip.py [--size 64] [--out docs/corruptions.png]
"""

import argparse

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageDraw
from sklearn.datasets import load_sample_images

from qa.io import atomic_path
from qa.perturb import HELD_OUT, MCE_DEFAULT, SEVERITIES, apply

LABEL_WIDTH, HEADER = 132, 16


def photo(size: int) -> torch.Tensor:
    """A square crop of the temple photograph at size x size, (1, 3, H, W) in [0, 1]."""
    china = np.array(load_sample_images().images[0])
    crop = torch.from_numpy(china[20:380, 60:420].copy()).permute(2, 0, 1).float() / 255
    return TF.resize(crop, [size, size], antialias=True).clamp(0, 1)[None]


def strip(size: int) -> Image.Image:
    """The grid: a label column, then the clean image and severities 1-5 per corruption."""
    image = photo(size)
    names = [*MCE_DEFAULT, *HELD_OUT]
    columns = 1 + len(SEVERITIES)
    sheet = Image.new("RGB", (LABEL_WIDTH + columns * size, HEADER + len(names) * size), "white")
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(["clean", *(f"severity {s}" for s in SEVERITIES)]):
        draw.text((LABEL_WIDTH + column * size + 4, 2), title, fill="black")
    for row, name in enumerate(names):
        top = HEADER + row * size
        label = name + (" (held out)" if name in HELD_OUT else "")
        draw.text((4, top + size // 2 - 6), label, fill="black")
        tiles = [image] + [apply(name, image, s, [0], ladder="imagenet_c") for s in SEVERITIES]
        for column, tile in enumerate(tiles):
            pixels = (tile[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            sheet.paste(Image.fromarray(pixels), (LABEL_WIDTH + column * size, top))
    return sheet


def main() -> None:
    """Draw the strip and write it, palette-quantised, atomically."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--out", default="docs/corruptions.png")
    args = parser.parse_args()
    sheet = strip(args.size).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    with atomic_path(args.out) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)


if __name__ == "__main__":
    main()
