"""A rich progress bar per epoch with loss, accuracy and images/s, shown only on a terminal."""

import time

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# Reading the running totals syncs a GPU; once every few steps keeps that cost invisible.
REFRESH_EVERY = 10


class EpochProgress:
    """Context manager around one epoch; `update(step, totals)` is the train loop's hook."""

    def __init__(self, epoch: int, epochs: int, steps: int, enabled: bool = True):
        console = Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        self.steps = steps
        self.started = time.perf_counter()
        self.bar = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not self.enabled,
        )
        self.task = self.bar.add_task("train", total=steps, stats="")

    def __enter__(self) -> "EpochProgress":
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def update(self, step: int, totals: torch.Tensor) -> None:
        """Advance the bar; refresh loss, accuracy and images/s every REFRESH_EVERY steps."""
        if not self.enabled:
            return
        fields = {}
        if step % REFRESH_EVERY == 0 or step + 1 == self.steps:
            loss, correct, count = totals.tolist()
            rate = count / max(time.perf_counter() - self.started, 1e-9)
            fields["stats"] = (
                f"loss {loss / count:.4f}  acc {correct / count:.4f}  {rate:.0f} img/s"
            )
        self.bar.update(self.task, completed=step + 1, **fields)
