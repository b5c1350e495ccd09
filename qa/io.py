"""The one atomic writer: every file qa or the trainer writes appears whole or not at all.

`atomic_path` replaces one file; `atomic_paths` replaces a set of files together (the report
set), keeping the previous files until every rename succeeded. `check_writable` tells, before
any work, whether an output path given on the command line can be written at all.
"""

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from qa.errors import InputError

TEMP_SUFFIX = ".tmp"


class IncompleteReplace(OSError):
    """`atomic_paths` failed after some targets were replaced and could not put them back."""

    def __init__(self, cause: BaseException, replaced: list[Path]):
        names = ", ".join(p.name for p in replaced)
        super().__init__(f"{cause}; {names} could not be put back")
        self.replaced = replaced


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Writing beside the target keeps the rename on one filesystem, so readers (and a Ctrl-C)
    only ever see the old file or the new one, never half of one.
    """
    with _temporary(path) as tmp:
        yield tmp
        os.replace(tmp, path)


@contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield a temporary path beside each of `paths`; if the block succeeds, replace every
    target by its temporary file, all of them or none.

    The previous files are kept (hard links, or copies where links are refused) until every
    rename has succeeded; when one rename fails, the targets already replaced get their
    previous file back, or are removed if they had none, and the error is raised. Should that
    also fail, IncompleteReplace names the targets left holding the new file. Only a kill
    (SIGKILL) between two renames, a window of microseconds, can leave a mix; every file is
    whole even then.
    """
    with ExitStack() as stack:
        temporaries = [stack.enter_context(_temporary(p)) for p in paths]
        yield temporaries
        targets = [Path(p) for p in paths]
        backups = {t: stack.enter_context(_backup(t)) for t in targets if t.exists()}
        done: list[Path] = []
        try:
            for tmp, target in zip(temporaries, targets, strict=True):
                os.replace(tmp, target)
                done.append(target)
        except BaseException as exc:
            _restore(done, backups, exc)
            raise


def _restore(done: list[Path], backups: dict[Path, Path], cause: BaseException) -> None:
    """Put back the previous file of every target in `done` (remove it where there was none)."""
    stuck = []
    for target in done:
        try:
            if target in backups:
                os.replace(backups[target], target)
            else:
                target.unlink()
        except OSError:
            stuck.append(target)
    if stuck:
        raise IncompleteReplace(cause, stuck) from cause


@contextmanager
def _temporary(path: str | os.PathLike) -> Iterator[Path]:
    """A new empty file beside `path` (readable like any file), removed on exit if still there."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report should read like any file
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def _backup(target: Path) -> Iterator[Path]:
    """A second name for `target`'s current file (a copy if hard links are refused), removed
    on exit unless it was renamed back onto the target."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".previous", dir=target.parent)
    os.close(fd)
    backup = Path(name)
    try:
        try:
            backup.unlink()
            os.link(target, backup)
        except OSError:  # a filesystem without hard links (some network and FAT mounts)
            shutil.copy2(target, backup)
        yield backup
    finally:
        backup.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def check_writable(path: str | os.PathLike, option: str, folder: bool = False) -> None:
    """Raise InputError unless `path` (a file, or with `folder` a folder to write files in)
    could be written now: the command line's output paths are checked before any work.

    A missing folder is fine where its nearest existing ancestor is a writable folder (it
    will be created). Only folders need write permission: files are replaced by renaming.
    """
    p = Path(path)
    try:
        if folder and p.exists() and not p.is_dir():
            raise InputError(f"{option} {p}: expected a folder, found a file")
        if not folder and p.is_dir():
            raise InputError(f"{option} {p}: expected a file name, found a folder")
        existing = p if folder else p.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:  # e.g. a folder on the way that this user may not enter
        raise InputError(f"{option} {p}: cannot be examined ({exc.strerror})") from None
    if not is_dir:
        raise InputError(f"{option} {p}: expected a folder at {existing}, found a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{option} {p}: expected a writable folder, found {existing} read-only")


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
