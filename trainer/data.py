"""Training data: validated ImageFolder splits, transforms, normalisation statistics, loaders."""

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from qa.data import Sample, fingerprint_from_hashes, image_problem, scan_image_folder, sha256_bytes
from qa.errors import InputError
from qa.preprocess import load_rgb, make_preprocessing, to_unit_tensor
from trainer.distributed import World

# Digits and small fine-tuning sets lose their subject under ImageNet's (0.08, 1) crops.
CROP_SCALE = (0.5, 1.0)
STATS_SAMPLE = 2000


@dataclass
class Splits:
    """The validated train and val splits of a data folder."""

    class_names: list[str]
    train: list[Sample]
    val: list[Sample]
    fingerprint: dict
    first_image_size: int


def load_splits(root: str | Path) -> Splits:
    """Scan `root/train` and `root/val`, read every file once, and fingerprint the training set.

    Every image is decoded up front, so a corrupt file is one line naming it before any
    training starts, rather than a crash in a loader worker an hour in.
    """
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: data folder not found (expected train/ and val/ inside)")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise InputError(
                f"{root}: no {split}/ folder (expected {root / split}/<class>/<image>)"
            )
    class_names, train = scan_image_folder(root / "train")
    val_names, val = scan_image_folder(root / "val")
    if val_names != class_names:
        raise InputError(
            f"{root / 'val'}: classes {val_names} differ from {root / 'train'}'s {class_names}"
        )
    with ThreadPoolExecutor() as pool:  # PIL decodes and hashlib hashes outside the GIL
        hashes = list(pool.map(_checked_hash, [s.path for s in train + val]))
    with Image.open(train[0].path) as img:  # reads the header only
        first_size = min(img.size)
    return Splits(
        class_names=class_names,
        train=train,
        val=val,
        fingerprint=fingerprint_from_hashes(hashes[: len(train)]),
        first_image_size=first_size,
    )


def _checked_hash(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    problem = image_problem(data)
    if problem is not None:
        raise InputError(f"{path}: not a readable image ({problem})")
    return sha256_bytes(data)


class ImageDataset(Dataset):
    """(image tensor, label) pairs for samples on disk, through one transform."""

    def __init__(self, samples: list[Sample], transform):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        return self.transform(load_rgb(sample.path)), sample.label


def train_transform(preprocessing: dict, augmentations: set[str]):
    """Training transform to a [0, 1] tensor: the augmentations asked for, or with none exactly
    the QA engine's `to_unit_tensor`. Normalisation is applied per batch, as the engine does."""
    from torchvision.transforms import v2

    if not augmentations:
        return to_unit_tensor(preprocessing)
    crop = int(preprocessing["crop"])
    if "crop" in augmentations:
        steps = [v2.ToImage(), v2.RandomResizedCrop(crop, scale=CROP_SCALE, antialias=True)]
    else:
        steps = [to_unit_tensor(preprocessing)]
    if "flip" in augmentations:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(steps)


def channel_stats(samples: list[Sample], size: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of [0, 1] training pixels, from an evenly spaced sample.

    Used when no pretrained weights dictate the normalisation; at most STATS_SAMPLE images
    are read, which pins both numbers to a few decimals on any realistic dataset.
    """
    picked = samples[:: max(1, len(samples) // STATS_SAMPLE)][:STATS_SAMPLE]
    to_unit = to_unit_tensor(make_preprocessing(size))
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    pixels = 0
    for sample in picked:
        x = to_unit(load_rgb(sample.path)).double()
        total += x.sum(dim=(1, 2))
        squares += (x * x).sum(dim=(1, 2))
        pixels += x[0].numel()
    mean = total / pixels
    # A constant channel would divide by zero; 1e-3 keeps it finite and harmless.
    std = (squares / pixels - mean**2).clamp_min(0).sqrt().clamp_min(1e-3)
    return mean.tolist(), std.tolist()


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A well-mixed 63-bit seed for one epoch of one process, a pure function of its inputs."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def train_loader(dataset: Dataset, batch_size: int, workers: int, seed: int, world: World):
    """Shuffling loader whose order and augmentations depend only on (seed, epoch, rank).

    Call `reseed(loader, seed, epoch, world)` before each epoch: the sampler's permutation and
    the workers' seeds are drawn from the loader's generator, so an epoch replays exactly
    after a resume, without carrying any loader state in the checkpoint.
    """
    sampler = None
    per_process = len(dataset)
    if world.size > 1:
        sampler = DistributedSampler(dataset, world.size, world.rank, shuffle=True, seed=seed)
        per_process = len(sampler)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        generator=torch.Generator(),
        # Training BatchNorm cannot take a batch of one; a ragged last batch is dropped unless
        # the whole (tiny) dataset fits in one batch.
        drop_last=per_process > batch_size,
        pin_memory=torch.cuda.is_available(),
    )


def reseed(loader: DataLoader, seed: int, epoch: int, world: World) -> None:
    """Set the loader's shuffle and worker seeds for `epoch` (see `train_loader`)."""
    loader.generator.manual_seed(epoch_seed(seed, epoch, world.rank))
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def eval_loader(dataset: Dataset, batch_size: int, workers: int, world: World) -> DataLoader:
    """In-order loader over this process's share of the data (every sample counted once)."""
    indices = list(range(world.rank, len(dataset), world.size))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=indices,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
    )
