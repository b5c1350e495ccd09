"""CSV manifests: a split as rows of `path,label` (and metadata columns for slices)."""

import os
from pathlib import Path

import numpy as np

from qa.data import Dataset, Sample, check_readable_file, stat_of
from qa.errors import InputError


def read_manifest(manifest: str | Path, root: str | Path | None = None) -> Dataset:
    """Read a CSV manifest (UTF-8, with or without Excel's byte-order mark): columns `path` and
    `label`, any others kept as metadata.

    Paths are relative to `root` (default: the manifest's folder). Every problem is one line
    naming the file, the line and the column: a missing or repeated column, a short row, an
    empty cell, a file that cannot be read, a file listed twice (after normalising the path
    and following links), which would count its evidence twice.
    """
    import csv

    manifest = Path(manifest)
    root = Path(root) if root is not None else manifest.parent
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows, ends = [], []
            for row in reader:
                rows.append(row)
                ends.append(reader.line_num)
    except FileNotFoundError:
        raise InputError(f"{manifest}: manifest not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{manifest}: cannot read the manifest as CSV ({exc})") from None
    if not rows:
        raise InputError(f"{manifest}:1: expected a header with columns path,label, found nothing")
    header = _manifest_header(manifest, rows[0])
    if len(rows) == 1:
        raise InputError(
            f"{manifest}:{ends[0] + 1}: expected at least one row of data, found nothing"
        )
    starts = [end + 1 for end in ends[:-1]]  # a quoted cell may span lines: name a row's first
    records, listed = [], {}
    for line, row in zip(starts, rows[1:], strict=True):
        rel, label, meta, real = _manifest_row(manifest, root, header, line, row)
        first = listed.setdefault(real, (line, rel))
        if first[0] != line:
            same = "" if first[1] == rel else f" ({first[1]}, the same file)"
            raise InputError(
                f"{manifest}:{line}: column 'path': {rel} repeats line {first[0]}{same}"
            )
        records.append((rel, label, meta))
    classes = sorted({label for _, label, _ in records})
    index = {c: i for i, c in enumerate(classes)}
    extra = [c for c in header if c not in ("path", "label")]
    return Dataset(
        source=str(manifest),
        root=root,
        class_names=classes,
        samples=[Sample(root / rel, index[label]) for rel, label, _ in records],
        ids=[rel for rel, _, _ in records],
        metadata={c: np.array([meta[c] for _, _, meta in records]) for c in extra},
    )


def _manifest_header(manifest: Path, row: list[str]) -> list[str]:
    """The manifest's column names (its first record, so line 1), or InputError for a missing
    or repeated one."""
    header = [h.strip() for h in row]
    missing = [c for c in ("path", "label") if c not in header]
    if missing:
        raise InputError(
            f"{manifest}:1: expected columns path,label, found {','.join(header)} "
            f"(missing {','.join(missing)})"
        )
    for i, name in enumerate(header):
        if name and name in header[:i]:
            raise InputError(
                f"{manifest}:1: column {name!r}: expected once in the header, found it "
                f"as columns {header.index(name) + 1} and {i + 1}"
            )
    return header


def _manifest_row(manifest: Path, root: Path, header: list[str], line: int, row: list[str]):
    """One manifest row as (relative path, label, metadata, real path of the file), or
    InputError naming the cell."""
    if len(row) != len(header):
        raise InputError(f"{manifest}:{line}: expected {len(header)} fields, found {len(row)}")
    cells = dict(zip(header, (c.strip() for c in row), strict=True))
    for column in ("path", "label"):
        if not cells[column]:
            raise InputError(
                f"{manifest}:{line}: column {column!r}: expected a value, found nothing"
            )
    rel = Path(cells["path"]).as_posix()
    where = f"{manifest}:{line}: column 'path': "
    check_readable_file(root / rel, stat_of(root / rel, where).st_mode, where)
    meta = {c: v for c, v in cells.items() if c not in ("path", "label")}
    return rel, cells["label"], meta, os.path.realpath(root / rel)
