"""Numeric precision of the forward pass: fp32, or bf16 / fp16 autocast with channels_last.

`defaults.precision` (a suite) or `qa run --precision` chooses; `resolve` checks the choice
against the device. The engine prepares each model once (`prepare`), moves every batch with
`to_input` and runs the forward pass under `autocast`; it casts the logits to float32 itself,
so that checks and the cache always see float32 whatever the precision.

- fp32 (the default): no autocast; on the CPU the module and batches keep their layout, so the
  logits are bit-identical to a plain `module(images)`.
- bf16: torch.autocast to bfloat16, on CUDA or the CPU. Logits differ from fp32 by about 1%
  of their scale (bfloat16 keeps 8 bits of mantissa; tests/test_precision.py measures a
  random resnet18), so a sample whose top two logits are that close may change its
  prediction: a bf16 result is a result at bf16, not a proof about fp32. The precision is
  part of each view's cache key and recorded in the report's environment.
- fp16: torch.autocast to float16, on CUDA only (the CPU's float16 kernels are slow and
  incomplete): refused on the CPU with one line.

Memory layout: on CUDA, or whenever the precision is not fp32, modules and batches are
channels_last (NHWC), the layout the tensor cores' convolutions want. Layout alone changes no
value beyond float rounding (tests/test_precision.py: within 1e-5).

torch is imported inside the functions: `qa validate` and `qa schema` read PRECISIONS through
qa.suite without loading torch.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from qa.errors import InputError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DEFAULT = "fp32"
CUDA_ONLY = ("fp16",)


def resolve(precision: str, device: torch.device | str) -> str:
    """`precision` if it is one of PRECISIONS and runs on `device`, else InputError (one line).

    fp16 needs CUDA; bf16 and fp32 run anywhere.
    """
    kind = device_type(device)
    if precision not in PRECISIONS:
        raise InputError(
            f"--precision: expected one of {', '.join(PRECISIONS)}, found {precision!r}"
        )
    if precision in CUDA_ONLY and kind != "cuda":
        raise InputError(
            f"precision {precision} needs --device cuda; on the {kind} use bf16 or fp32"
        )
    return precision


def device_type(device: torch.device | str) -> str:
    """ "cpu" or "cuda" for a torch.device or its name ("cuda:1"), without importing torch."""
    return getattr(device, "type", str(device).split(":", 1)[0])


def channels_last(device: torch.device | str, precision: str) -> bool:
    """Whether modules and batches use the channels_last layout: on CUDA, or below fp32."""
    return device_type(device) == "cuda" or precision != "fp32"


def prepare(module: torch.nn.Module, device: torch.device | str, precision: str):
    """Move `module` to `device`, channels_last where `channels_last` says; returns it.

    Its parameters stay float32: autocast casts per operation, so one prepared module serves
    every precision's numerics and its weights are never rounded in place.
    """
    import torch

    module = module.to(device)
    if channels_last(device, precision):
        module = module.to(memory_format=torch.channels_last)
    return module


def to_input(images: torch.Tensor, device: torch.device | str, precision: str) -> torch.Tensor:
    """A (B, C, H, W) batch on `device`, in the layout `prepare` gave the module.

    The dtype is kept (autocast casts inside the forward pass). A copy to CUDA is
    non-blocking, so that from pinned memory it overlaps the host's next batch.
    """
    import torch

    device = torch.device(device)
    layout = torch.channels_last if channels_last(device, precision) else torch.preserve_format
    return images.to(device, non_blocking=device.type == "cuda", memory_format=layout)


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The context to run the forward pass in: torch.autocast for bf16 and fp16, nothing for
    fp32. The logits it yields may be bfloat16 or float16: the caller casts them to float32."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
