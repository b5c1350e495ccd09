"""The one atomic writer: every file qa or the trainer writes appears whole or not at all."""

import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Writing beside the target keeps the rename on one filesystem, so readers (and a Ctrl-C)
    only ever see the old file or the new one, never half of one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report should read like any file
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def stale_temporaries(folder: str | os.PathLike, names: list[str]) -> list[Path]:
    """The temporaries `atomic_path` left in `folder` for the files `names` when its process was
    killed mid-write (a SIGKILL or power cut skips its clean-up); only our own naming pattern,
    `.NAME.XXXXXXXX.tmp`, is matched, so nobody else's files are ever listed."""
    folder = Path(folder)
    return sorted(
        path
        for name in names
        for path in folder.glob(f".{glob.escape(name)}.*{TEMP_SUFFIX}")
        if path.is_file()
    )
