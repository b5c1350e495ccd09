"""One epoch of training and one pass of validation: the code every step runs through.

Loaders yield [0, 1] images; `normalize` (qa.preprocess.normalize) is applied to each batch
on the device, as the QA engine does, which also spares the loader a per-image transform.
Both return a float64 tensor of sums `[loss_sum, correct, count]`, kept on the device during
the epoch (no per-step `.item()` sync) and summed across processes by the caller.
"""

import math
from collections.abc import Callable

import torch
from torch import nn

StepHook = Callable[[int, torch.Tensor], None]


def autocast(device: torch.device):
    """bf16 autocast on CUDA; on CPU, plain float32 (bf16 is slower there and less exact)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA, where convolutions run natively in NHWC; on CPU the contiguous
    layout measured a few percent faster for these models (bench/train_throughput.py)."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor per step: linear warm-up to 1 over `warmup_steps`, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler,
    criterion: nn.Module,
    device: torch.device,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    grad_clip: float = 0.0,
    on_step: StepHook | None = None,
) -> torch.Tensor:
    """Train `model` for one pass over `loader`; returns `[loss_sum, correct, count]`.

    `on_step(step, totals)` is called after each step (for a progress bar); it must not force
    a device sync every step.
    """
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    layout = memory_format(device)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for step, (images, labels) in enumerate(loader):
        images = normalize(images.to(device, non_blocking=True, memory_format=layout))
        labels = labels.to(device, non_blocking=True)
        with autocast(device):
            logits = model(images)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            totals[0] += loss.detach() * len(labels)
            totals[1] += (logits.argmax(dim=1) == labels).sum()
            totals[2] += len(labels)
        if on_step is not None:
            on_step(step, totals)
    return totals


@torch.inference_mode()
def evaluate(model: nn.Module, loader, device: torch.device, normalize) -> torch.Tensor:
    """Validation sums `[loss_sum, correct, count]` of plain cross-entropy, model in eval mode."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    layout = memory_format(device)
    for images, labels in loader:
        images = normalize(images.to(device, non_blocking=True, memory_format=layout))
        labels = labels.to(device, non_blocking=True)
        with autocast(device):
            logits = model(images).float()
        totals[0] += nn.functional.cross_entropy(logits, labels, reduction="sum")
        totals[1] += (logits.argmax(dim=1) == labels).sum()
        totals[2] += len(labels)
    return totals
