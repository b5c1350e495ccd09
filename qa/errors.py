"""One exception hierarchy, mapped to exit codes (ExitCode) by the command-line layers."""

from enum import IntEnum


class ExitCode(IntEnum):
    """What `qa` and `trainer` return to the shell."""

    OK = 0
    GATE_FAILED = 1
    BAD_INPUT = 2
    INTERNAL = 3
    INTERRUPTED = 130


class QAError(Exception):
    """Base of every error qa raises on purpose."""

    exit_code = ExitCode.INTERNAL


class InputError(QAError):
    """Unusable input: the message is one line naming the file, key or line, expected and found."""

    exit_code = ExitCode.BAD_INPUT


class UntrustedCheckpointError(InputError):
    """A checkpoint that could only be loaded by executing code from the file."""


class PeerError(QAError):
    """A sharded run lost a peer: another rank died, failed or stopped answering. Exit 3, but
    not a bug in this process: the message says what this rank saw (qa.distributed)."""


class RankInputError(InputError):
    """Bad input met by rank K of a sharded run, raised the same on every rank: "rank K: ..."."""


class RankError(QAError, RuntimeError):
    """A failure (a bug) of rank K of a sharded run, raised the same on every rank: "rank K:
    Type: message" (exit 3)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a
    one-line error shows of an exception raised by code that is not qa's."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
