"""The embedded demo data: scikit-learn's 1,797 real handwritten digits as an ImageFolder tree."""

from pathlib import Path

import numpy as np

from qa.errors import InputError
from qa.io import atomic_path

SPLITS = {"train": 0.70, "val": 0.15, "test": 0.15}


def split_indices(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Stratified, deterministic train/val/test split of sample indices for a given seed."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, rest = train_test_split(
        idx, train_size=SPLITS["train"], stratify=labels, random_state=seed
    )
    val, test = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def parse_classes(text: str | None) -> list[int]:
    """Parse a class selection such as "0-4" or "0,1,7" into digit labels."""
    if not text:
        return list(range(10))
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise InputError(
            f"--classes: expected digits like '0-4' or '0,1,7', found {text!r}"
        ) from None
    if not out or min(out) < 0 or max(out) > 9:
        raise InputError(f"--classes: expected digits between 0 and 9, found {text!r}")
    return sorted(out)


def parse_mislabel(text: str | None) -> tuple[int, int] | None:
    """Parse a mislabelling such as "3:8" (3s filed as 8) into two digits (None if not given)."""
    if not text:
        return None
    a, sep, b = text.partition(":")
    if not (sep and a.strip().isdecimal() and b.strip().isdecimal()):
        raise InputError(f"--mislabel: expected two digits like '3:8', found {text!r}")
    pair = (int(a), int(b))
    if max(pair) > 9 or pair[0] == pair[1]:
        raise InputError(f"--mislabel: expected two different digits 0-9, found {text!r}")
    return pair


def mislabelled(
    labels: np.ndarray, train: np.ndarray, pair: tuple[int, int], fraction: float, seed: int
) -> np.ndarray:
    """The labels with `fraction` of digit `pair[0]`'s training images given label `pair[1]`.

    Which images are relabelled is drawn from `seed`; only indices in `train` change, so the
    val and test splits stay clean and a model trained on the result is flawed, not its exam.
    """
    if not 0.0 <= fraction <= 1.0:
        raise InputError(f"--mislabel-fraction: expected a number in [0, 1], found {fraction!r}")
    source, target = pair
    members = train[labels[train] == source]
    chosen = np.random.default_rng(seed).choice(
        members, size=round(fraction * len(members)), replace=False
    )
    out = labels.copy()
    out[chosen] = target
    return out


def write_digits(
    out: str | Path,
    size: int = 32,
    seed: int = 0,
    classes: list[int] | None = None,
    mislabel: tuple[int, int] | None = None,
    mislabel_fraction: float = 0.0,
):
    """Write the digits as `out/{train,val,test}/<digit>/digit-<index>.png`, upscaled to `size`.

    The split is made over all ten digits and then filtered, so a class subset (the demo's
    source task) uses exactly the same train images as the full set and never its test images.
    `mislabel` (A, B) files `mislabel_fraction` of digit A's training images under B:
    deliberately mislabelled training data, for a flawed model the gates should catch.
    Returns the number of images written per split.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    if size < 8:
        raise InputError(f"--size: expected at least 8 pixels, found {size}")
    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    keep = set(classes if classes is not None else range(10))
    splits = split_indices(digits.target, seed)
    labels = digits.target
    if mislabel is not None:
        labels = mislabelled(labels, splits["train"], mislabel, mislabel_fraction, seed)
    out = Path(out)
    counts = {}
    for split, idx in splits.items():
        counts[split] = 0
        for i in idx:
            label = int(labels[i])
            if label not in keep:
                continue
            img = Image.fromarray(images[i], mode="L").resize((size, size), Image.BILINEAR)
            path = out / split / str(label) / f"digit-{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                img.save(tmp, format="PNG")
            counts[split] += 1
    return counts
