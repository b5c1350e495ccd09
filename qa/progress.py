"""Progress of a run's passes on stderr: a live bar on a terminal, plain lines in a log.

The engine plans the passes a run may make (images each: profile, logits and adversarial
passes) and, for each in turn, either starts it (`start`, `advance`, `finish`) or skips it
(`skip`: found in the cache). A pass may read a different number of images than planned (a
split lost its undecodable files): `start` corrects the run's total.

On a terminal (stderr a tty) a rich bar for the whole run, with an ETA, sits above the
current pass's bar. Anywhere else, a CI log among them, a line per pass when it starts and
finishes and at most every INTERVAL_S seconds in between, e.g.
`pass 3/12 candidate + baseline on eval: clean, 60 corrupted: 1,800/2,000 images, 14 s`.
Names come from plugins (a perturbation's name), so rich shows them literally, never as markup.
"""

import sys
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich's progress is imported only for bars on a terminal
    from rich.console import Console

INTERVAL_S = 10.0  # the least time between two plain lines of one pass
NAME_WIDTH = 40  # a bar's name is cut beyond this, so the bars keep their width


class _Plan:
    """The passes a run may make, the images of each, and which one is running."""

    def __init__(self, planned: list[int]):
        self.pending = deque(planned)
        self.passes = len(planned)
        self.images = sum(planned)
        self.number = 0  # of the current (or last) pass, from 1

    def start(self, total: int) -> None:
        planned = self.pending.popleft() if self.pending else 0
        self.images += total - planned
        self.number += 1
        self.passes = max(self.passes, self.number)  # a pass the plan missed still counts

    def skip(self) -> None:
        if self.pending:
            self.images -= self.pending.popleft()
            self.passes -= 1


class Silent:
    """No progress at all (`--quiet`, or a rank other than 0)."""

    def start(self, name: str, total: int) -> None:
        """Begin a pass named `name` over `total` images."""

    def advance(self, n: int) -> None:
        """`n` more images of the current pass are done."""

    def finish(self) -> None:
        """The current pass is done."""

    def skip(self) -> None:
        """The next planned pass is not needed (its views were cached)."""


class Lines(Silent):
    """Plain lines for logs: at a pass's start and finish, and at most every INTERVAL_S
    seconds in between; each flushed, so a CI log shows it at once."""

    def __init__(
        self, planned: list[int], stream=None, clock: Callable[[], float] = time.monotonic
    ):
        self.plan = _Plan(planned)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.name, self.done, self.total = "", 0, 0
        self.began = self.last = 0.0

    def start(self, name: str, total: int) -> None:
        """Begin a pass and print its first line."""
        self.plan.start(total)
        self.name, self.done, self.total = name, 0, total
        self.began = self.clock()
        self._line(self.began)

    def advance(self, n: int) -> None:
        """Count `n` images; print a line when INTERVAL_S has passed since the last one."""
        self.done += n
        now = self.clock()
        if now - self.last >= INTERVAL_S:
            self._line(now)

    def finish(self) -> None:
        """Print the pass's last line."""
        self._line(self.clock())

    def skip(self) -> None:
        """Drop the next planned pass from the counts."""
        self.plan.skip()

    def _line(self, now: float) -> None:
        self.last = now
        print(
            f"pass {self.plan.number}/{self.plan.passes} {self.name}: "
            f"{self.done:,}/{self.total:,} images, {now - self.began:,.0f} s",
            file=self.stream,
            flush=True,
        )


class Bars(Silent):
    """A rich bar for the whole run (ETA) above the current pass's bar, gone when done."""

    def __init__(self, planned: list[int], console: "Console"):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        self.plan = _Plan(planned)
        name = Column(no_wrap=True, overflow="ellipsis", max_width=NAME_WIDTH)
        columns = (
            # a long name is cut, so the bars keep their width on a narrow terminal
            TextColumn("{task.description}", markup=False, table_column=name),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        self.progress = Progress(*columns, console=console, transient=True)
        self.overall = self.progress.add_task(self._overall(), total=self.plan.images)
        self.current = None

    def start(self, name: str, total: int) -> None:
        """Begin a pass: its own bar, and the run's bar renamed and resized."""
        self.plan.start(total)
        self._update_overall()
        self.current = self.progress.add_task(name, total=total)

    def advance(self, n: int) -> None:
        """Advance both bars by `n` images."""
        self.progress.advance(self.overall, n)
        if self.current is not None:
            self.progress.advance(self.current, n)

    def finish(self) -> None:
        """Remove the pass's bar."""
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None

    def skip(self) -> None:
        """Drop the next planned pass from the run's bar."""
        self.plan.skip()
        self._update_overall()

    def _update_overall(self) -> None:
        self.progress.update(self.overall, description=self._overall(), total=self.plan.images)

    def _overall(self) -> str:
        number = max(self.plan.number, 1)
        return f"pass {number}/{self.plan.passes}, all images"


@contextmanager
def progress(show: bool, planned: list[int]):
    """The run's progress for the passes `planned` (images of each, in the order the engine
    makes them): nothing unless `show`; bars when stderr is a terminal, lines otherwise."""
    if not show:
        yield Silent()
    elif not sys.stderr.isatty():
        yield Lines(planned)
    else:
        from rich.console import Console

        bars = Bars(planned, Console(file=sys.stderr))
        with bars.progress:
            yield bars
