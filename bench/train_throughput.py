"""Training throughput of the trainer's epoch code against a plain hand-written PyTorch loop.

Both train the same model (resnet18 by default) on the same digits images, at the same batch
size, threads and loader workers, with augmentation off: the plain loop is ImageFolder +
Resize + ToTensor + Normalize, a DataLoader, CrossEntropyLoss and Adam with
`loss.backward(); optimizer.step()`; the trainer's side is `trainer.loop.train_epoch` with the
trainer's own dataset, loader, optimiser (`trainer.init.make_optimizer`) and schedule. One
warm-up epoch each is not timed; then the two alternate for `--repeats` epochs each (5, as
issue 11 asks), each repeat's pair is printed, and the headline is the median of the
per-repeat ratios.

    .venv/bin/python bench/train_throughput.py [--size 32] [--batch-size 32] [--repeats 5]

The last line is the headline: `train_throughput_ratio: <trainer images/s / plain images/s>`.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from qa.architectures import build_model
from qa.data import scan_image_folder
from qa.preprocess import make_preprocessing, normalize
from trainer import data, init
from trainer.config import TrainConfig
from trainer.digits import write_digits
from trainer.distributed import World
from trainer.loop import memory_format, train_epoch, warmup_cosine


def trainer_epoch_fn(root: Path, arch: str, size: int, batch_size: int, workers: int):
    """A callable running one epoch through the trainer's own code; returns images/s."""
    cfg = TrainConfig()
    class_names, samples = scan_image_folder(root / "train")
    mean, std = data.channel_stats(samples, size)
    pp = make_preprocessing(size, mean=mean, std=std)
    dataset = data.ImageDataset(samples, data.train_transform(pp, set()))
    loader = data.train_loader(dataset, batch_size, workers, cfg.seed, World())
    model = build_model(arch, {"num_classes": len(class_names)})
    model.to(memory_format=memory_format(torch.device("cpu")))
    optimizer = init.make_optimizer(model, cfg.lr, cfg.lr, cfg.weight_decay)
    schedule = warmup_cosine(100 * len(loader), len(loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    criterion = nn.CrossEntropyLoss()
    cpu, to_model = torch.device("cpu"), normalize(pp)
    epoch = 0

    def run() -> float:
        nonlocal epoch
        epoch += 1
        data.reseed(loader, cfg.seed, epoch, World())
        model.train()
        started = time.perf_counter()
        totals = train_epoch(model, loader, optimizer, scheduler, criterion, cpu, to_model)
        return totals[2].item() / (time.perf_counter() - started)

    return run


def plain_epoch_fn(root: Path, arch: str, size: int, batch_size: int, workers: int):
    """A callable running one epoch of a plain hand-written loop; returns images/s."""
    import torchvision
    from torchvision import transforms

    tf = transforms.Compose(
        [transforms.Resize(size), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
    )
    dataset = torchvision.datasets.ImageFolder(root / "train", transform=tf)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True
    )
    model = torchvision.models.get_model(arch, num_classes=len(dataset.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()

    def run() -> float:
        model.train()
        seen = 0
        started = time.perf_counter()
        for images, labels in loader:
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(labels)
        return seen / (time.perf_counter() - started)

    return run


def main() -> None:
    """Measure both loops and print the ratio last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--workers", type=int, default=TrainConfig.workers)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "digits"
        write_digits(root, size=args.size, seed=0)
        shape = (args.arch, args.size, args.batch_size, args.workers)
        loops = {"trainer": trainer_epoch_fn(root, *shape), "plain": plain_epoch_fn(root, *shape)}
        for run in loops.values():
            run()  # warm-up: first-touch allocations, worker start, oneDNN kernel selection
        rates: dict[str, list[float]] = {name: [] for name in loops}
        for _ in range(args.repeats):
            for name, run in loops.items():
                rates[name].append(run())
    print(
        f"{args.arch} {args.size}px batch {args.batch_size} workers {args.workers} "
        f"threads {torch.get_num_threads()} repeats {args.repeats}"
    )
    for name, values in rates.items():
        print(f"{name:8s} images/s: " + "  ".join(f"{v:.1f}" for v in values))
    # Each repeat's two epochs run back to back, so their ratio cancels slow drifts in the
    # load of a shared machine; the median drops a repeat hit by a burst.
    ratios = [t / p for t, p in zip(rates["trainer"], rates["plain"], strict=True)]
    print("ratio    per repeat: " + "  ".join(f"{r:.2f}" for r in ratios))
    print(f"train_throughput_ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
