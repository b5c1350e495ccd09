"""Sharded runs on torch.distributed: the process group of one `qa run` and its collectives.

Under `torchrun --nproc-per-node K -m qa run ...` every rank runs the command. Each rank takes
a contiguous shard of every split (Group.shard), computes its rows of each missing view, and
rank 0 assembles them (Group.gather_rows), runs the checks and writes the reports; every rank
exits with rank 0's code (Group.broadcast). An error on one rank becomes the same error on
every rank (Group.check, Group.together), so a bad file in one shard stops every rank with
the same one line and exit code instead of leaving the others waiting.

gloo on CPU, nccl on CUDA with one GPU per rank (LOCAL_RANK). Every collective waits at most
QA_DIST_TIMEOUT seconds (default 600); a collective that fails because another rank died,
failed or stopped answering raises qa.errors.PeerError (exit 3). On one
machine torchrun's agent stops the surviving ranks itself when one dies (SIGTERM) and exits
non-zero with a summary naming the failed rank; the timeout is what ends a multi-node run
whose peer vanished without a word.

One process (no torchrun, or WORLD_SIZE 1) is SINGLE, whose collectives are identities: the
rest of qa uses a Group the same way whatever the world size.
"""

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.errors import InputError, PeerError, RankError, RankInputError, first_line

if TYPE_CHECKING:
    import torch

TIMEOUT_VARIABLE = "QA_DIST_TIMEOUT"
CPU = "cpu"  # SINGLE's device, by name: one process imports torch only to compute a view
DEFAULT_TIMEOUT = 600.0  # seconds: long enough for a slow rank's batch, short of a stuck CI job


@dataclass(frozen=True)
class Group:
    """This process's place in a run: its rank among `world` processes and its device.

    Every method but shard is a collective: every rank must call it, in the same order.
    """

    rank: int = 0
    world: int = 1
    device: "torch.device | str" = CPU

    def shard(self, n: int) -> range:
        """This rank's contiguous share of range(n): the shards in rank order cover it exactly,
        the first n % world ranks one item more than the rest."""
        size, extra = divmod(n, self.world)
        start = self.rank * size + min(self.rank, extra)
        return range(start, start + size + (self.rank < extra))

    def gather_rows(self, rows: np.ndarray) -> np.ndarray | None:
        """Every rank's `rows` (2-D float32, the same columns, any row count) concatenated in
        rank order on rank 0; None on the other ranks.

        Each rank's rows are padded to the largest row count (dist.gather wants equal shapes),
        so rank 0 holds world x that many rows once, for one view at a time.
        """
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if self.world == 1:
            return rows
        import torch
        import torch.distributed as dist

        shape = torch.tensor(rows.shape, dtype=torch.int64, device=self.device)
        shapes = [torch.empty_like(shape) for _ in range(self.world)]
        with self._collective("gather_rows"):
            dist.all_gather(shapes, shape)
        counts, columns = zip(*(s.tolist() for s in shapes), strict=True)
        if len(set(columns)) > 1:
            raise RankError(f"gather_rows: the ranks' rows have different columns {columns}")
        most = max(counts)
        if most == 0:
            return rows if self.rank == 0 else None
        padded = torch.zeros((most, columns[0]), dtype=torch.float32, device=self.device)
        padded[: len(rows)] = torch.from_numpy(rows)
        parts = [torch.empty_like(padded) for _ in range(self.world)] if self.rank == 0 else None
        with self._collective("gather_rows"):
            dist.gather(padded, parts, dst=0)
        if parts is None:
            return None
        return torch.cat([p[:k] for p, k in zip(parts, counts, strict=True)]).cpu().numpy()

    def all_gather_objects(self, obj: Any) -> list:
        """[rank 0's obj, rank 1's obj, ...] on every rank (picklable, a few MB at most)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        gathered: list = [None] * self.world
        with self._collective("all_gather_objects"):
            dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any = None) -> Any:
        """Rank 0's `obj` on every rank (the others' `obj` is ignored)."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == 0 else None]
        with self._collective("broadcast"):
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def check(self, error: BaseException | None) -> None:
        """Raise on every rank if any rank passed an error; return on every rank otherwise.

        The first failing rank K's one-line message, prefixed "rank K: ", is raised as a
        RankInputError (an InputError: exit 2) when its error was an InputError, else as a
        RankError (exit 3). One process re-raises `error` itself.
        """
        if self.world == 1:
            if error is not None:
                raise error
            return
        mine = None if error is None else (isinstance(error, InputError), _line(error))
        failures = [(k, f) for k, f in enumerate(self.all_gather_objects(mine)) if f is not None]
        if not failures:
            return
        rank, (bad_input, line) = failures[0]
        kind = RankInputError if bad_input else RankError
        raise kind(f"rank {rank}: {line}") from error

    def together(self, fn: Callable, *args, **kwargs) -> Any:
        """`fn(*args, **kwargs)` on every rank, then check: if it raised on any rank, every rank
        raises (check's error); else every rank returns its own result."""
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self.check(exc)
            raise  # unreachable: check raised on every rank
        self.check(None)
        return result

    @contextlib.contextmanager
    def _collective(self, what: str) -> Iterator[None]:
        """Turn torch's failure of a collective (a peer died, failed or timed out) into a
        PeerError, which the command line reports in one line."""
        try:
            yield
        except RuntimeError as exc:  # DistBackendError, DistNetworkError, gloo's errors
            raise PeerError(
                f"{what} with the other ranks failed: another rank died, "
                f"failed or did not answer within {TIMEOUT_VARIABLE}={timeout_seconds():g} s "
                f"({first_line(exc)})"
            ) from exc


SINGLE = Group()


def _line(error: BaseException) -> str:
    """An error's one line: an InputError's message; anything else's type and message."""
    if isinstance(error, InputError):
        return first_line(error)
    return f"{type(error).__name__}: {first_line(error)}"


def timeout_seconds() -> float:
    """How long a collective may wait: $QA_DIST_TIMEOUT seconds, else DEFAULT_TIMEOUT."""
    text = os.environ.get(TIMEOUT_VARIABLE)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise InputError(
            f"{TIMEOUT_VARIABLE}: expected a positive number of seconds, found {text!r}"
        )
    return value


@contextlib.contextmanager
def from_environment(device: str) -> Iterator[Group]:
    """The group of this process: torchrun's (WORLD_SIZE > 1), else SINGLE.

    Under torchrun: gloo on CPU; on CUDA nccl, this rank's GPU cuda:LOCAL_RANK made current.
    CUDA asked for but absent opens a gloo group, so that qa.inference.resolve_device's one
    line stops every rank together as in one process. The group is destroyed on exit.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield SINGLE
        return
    import torch
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    target = torch.device(CPU)
    if device == "cuda" and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise InputError(
                f"LOCAL_RANK {local}: this machine has {torch.cuda.device_count()} CUDA "
                "devices; run at most that many processes per node (--nproc-per-node)"
            )
        target = torch.device("cuda", local)
        torch.cuda.set_device(target)
    backend = "nccl" if target.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=timeout_seconds())
    try:
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    except RuntimeError as exc:  # the rendezvous timed out, or the address cannot be reached
        raise PeerError(f"cannot join the other {world - 1} ranks ({first_line(exc)})") from exc
    try:
        yield Group(rank=rank, world=world, device=target)
    finally:
        dist.destroy_process_group()
