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
