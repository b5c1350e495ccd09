"""Data-parallel plumbing: one process per device under torchrun, or a single process."""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from qa.errors import InputError


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among `size` training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints and logs and prints."""
        return self.rank == 0


def pick_device(choice: str, local_rank: int = 0) -> torch.device:
    """Resolve --device (auto, cpu, cuda) to a device; asking for a missing GPU is bad input."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device("cuda", local_rank)


def start(device_choice: str) -> tuple[World, torch.device]:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return World(), pick_device(device_choice)
    world = World(
        rank=int(os.environ["RANK"]),
        size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    device = pick_device(device_choice, world.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def stop() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_across(values: torch.Tensor, world: World) -> torch.Tensor:
    """Sum a tensor of counters over all processes (a no-op in a single process)."""
    if world.size > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_buffers(module: torch.nn.Module, world: World) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics) before evaluating."""
    if world.size > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
