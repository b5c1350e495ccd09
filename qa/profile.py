"""Data profiles: one row of facts per image file, the table every data check reads.

A profile is computed once per split (planned as a view, which the engine caches) by reading
each file exactly once (qa.data.read_bytes: a file or a tar shard's member alike): its bytes
give the sha256, its header size and mode, and its pixels, decoded as inference decodes them
(qa.preprocess.decode_rgb), give statistics and a perceptual hash. A file that cannot be read
or decoded is a row with `decodes` false and the reason in `error`: a finding for the checks,
never a crash here.
"""

import dataclasses
import io
import os
import re
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported only where a profile is built or read
    import pandas as pd

from qa import data
from qa.data import Sample, sha256_bytes
from qa.errors import InputError
from qa.evidence import View
from qa.preprocess import decode_rgb, rgb8

COLUMNS = (
    "path",
    "label",
    "split",
    "sha256",
    "phash",
    "width",
    "height",
    "mode",
    "channels",
    "file_size",
    "decodes",
    "error",
    "pixel_mean",
    "pixel_std",
)
# Below this many files a process pool costs more to start than it saves.
MIN_FILES_FOR_POOL = 2000
MAX_WORKERS = 8


def profile_view(split: str) -> View:
    """The view under which the engine computes and caches the profile of `split`."""
    return View(kind="profile", model="data", split=split)


PROFILE_EVAL = profile_view("eval")
PROFILE_TRAIN = profile_view("train")


def profile_file(sample: Sample | str) -> dict:
    """Every per-file fact of the profile, from one read (qa.data.read_bytes) of `sample` (or
    of the file at a path).

    Unreadable or undecodable files get `decodes` False and `error` set; the header's size and
    mode are kept when the header parsed but the pixels did not (a truncated file).
    """
    import imagehash
    from PIL import Image

    row: dict = {"sha256": None, "phash": None, "width": None, "height": None, "mode": None}
    row.update(channels=None, file_size=None, decodes=False, error=None)
    row.update(pixel_mean=float("nan"), pixel_std=float("nan"))
    if not isinstance(sample, Sample):
        sample = Sample(Path(sample), 0)
    try:
        raw = data.read_bytes(sample)
    except InputError as exc:
        cause = exc.__cause__
        row["error"] = (
            f"{type(cause).__name__}: {cause.strerror or cause}"
            if isinstance(cause, OSError)
            else str(exc)
        )
        return row
    row.update(sha256=sha256_bytes(raw), file_size=len(raw))
    try:
        with Image.open(io.BytesIO(raw)) as img:
            row.update(width=img.width, height=img.height, mode=img.mode)
            row["channels"] = len(img.getbands())
            pixels = decode_rgb(img)  # the decoder inference uses: the same pixels
            row.update(pixel_mean=float(pixels.mean()), pixel_std=float(pixels.std()))
            row["phash"] = str(imagehash.phash(rgb8(pixels)))
    except Exception as exc:  # PIL raises many types for bad files; all mean "undecodable"
        # PIL names the in-memory file by its address: drop it, so profiles are reproducible
        reason = re.sub(r" ?<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc))
        row.update(error=f"{type(exc).__name__}: {reason}", phash=None)
        return row
    row["decodes"] = True
    return row


def _profile_chunk(samples: list[Sample]) -> list[dict]:
    return [profile_file(s) for s in samples]


def _default_workers(n_files: int) -> int:
    if n_files < MIN_FILES_FOR_POOL:
        return 1
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))


def profile_samples(
    samples: list[Sample] | list[tuple[str | Path, str]],
    root: str | Path,
    class_names: list[str],
    split: str,
    workers: int | None = None,
    ids: list[str] | None = None,
    advance=None,
) -> "pd.DataFrame":
    """Profile every sample of one split: a DataFrame with one row per file, in sample order.

    `samples` are qa.data.Sample (label an index into `class_names`) or (path, class name)
    pairs. `path` in the result is the sample's id: `ids[i]` when given (a Dataset's), else
    the path relative to `root` (a tar member's name for a shard's sample). `workers`
    processes read files in parallel; by default one below MIN_FILES_FOR_POOL files, else
    one per available core (up to MAX_WORKERS). `advance(n)`, when given, is called as files
    are done (the run's progress).
    """
    import pandas as pd

    todo, rels, labels = [], [], []
    for s in samples:
        if isinstance(s, Sample):
            label = class_names[s.label]
            file, rel = (s.path, s.name) if s.member else _locate(Path(s.path), Path(root))
            todo.append(dataclasses.replace(s, path=Path(file)))
        else:
            path, label = s
            file, rel = _locate(Path(path), Path(root))
            todo.append(Sample(Path(file), 0))
        rels.append(rel)
        labels.append(str(label))
    workers = _default_workers(len(todo)) if workers is None else max(1, workers)
    # Chunks of a few hundred files keep pickling overhead small and the cores busy.
    size = max(1, min(500, len(todo) // (workers * 4) or 1))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    from concurrent.futures import ProcessPoolExecutor  # a run served by the cache needs none

    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        rows = []
        for chunk in (pool.map if pool else map)(_profile_chunk, chunks):
            rows.extend(chunk)
            if advance is not None:
                advance(len(chunk))
    frame = pd.DataFrame(rows, columns=list(COLUMNS[3:]))
    frame.insert(0, "path", list(ids) if ids is not None else rels)
    frame.insert(1, "label", labels)
    frame.insert(2, "split", split)
    for column in ("width", "height", "channels", "file_size"):
        frame[column] = frame[column].astype("Int64")
    frame["decodes"] = frame["decodes"].astype(bool)
    return frame


def _locate(path: Path, root: Path) -> tuple[Path, str]:
    """The file to read and its id relative to `root`.

    A relative path already under `root` (as qa.data.scan_image_folder gives for a relative
    root) is used as is; any other relative path is taken relative to `root`.
    """
    if not path.is_absolute() and not path.is_relative_to(root):
        path = root / path
    for inner, outer in ((path, root), (path.resolve(), root.resolve())):
        if inner.is_relative_to(outer):
            return path, inner.relative_to(outer).as_posix()
    return path, path.as_posix()


def phash_words(phashes) -> tuple[np.ndarray, np.ndarray]:
    """Perceptual hashes (16-hex-digit strings, None for undecodable) as uint64, and a validity mask."""
    valid = np.array([isinstance(h, str) for h in phashes], dtype=bool)
    words = [int(h, 16) if ok else 0 for h, ok in zip(phashes, valid, strict=True)]
    return np.array(words, dtype=np.uint64), valid  # the dtype up front: no float detour


def nearest_hamming(
    query: np.ndarray, reference: np.ndarray, same_set: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """For each uint64 hash in `query`, the smallest Hamming distance to `reference`, and where.

    With `same_set` (query is reference) a hash is not compared with itself. Distances are
    computed in blocks of about four million pairs (32 MB), so 20,000 x 20,000 hashes stay
    within memory and take seconds. With no reference hash the distance is 65 and index -1.
    """
    dist = np.full(len(query), 65, dtype=np.int64)
    where = np.full(len(query), -1, dtype=np.int64)
    if len(reference) == 0:
        return dist, where
    block = max(1, (1 << 22) // len(reference))
    for start in range(0, len(query), block):
        stop = min(start + block, len(query))
        d = np.bitwise_count(query[start:stop, None] ^ reference[None, :])
        if same_set:
            rows = np.arange(stop - start)
            d[rows, rows + start] = 65
        best = d.argmin(axis=1)
        dist[start:stop] = d[np.arange(stop - start), best]
        where[start:stop] = best
    where[dist > 64] = -1
    return dist, where


def nearest_frame(
    query: "pd.DataFrame", reference: "pd.DataFrame", same_set: bool
) -> "pd.DataFrame":
    """Each query image's nearest reference image by perceptual hash: path, nearest, distance.

    `distance` is missing for a query image without a hash (undecodable) or when the reference
    has no hashed image; with `same_set` the query is the reference and no image is its own
    nearest.
    """
    import pandas as pd

    q, q_ok = phash_words(query["phash"].tolist())
    r, r_ok = (q, q_ok) if same_set else phash_words(reference["phash"].tolist())
    q_rows, r_rows = np.flatnonzero(q_ok), np.flatnonzero(r_ok)
    dist, where = nearest_hamming(q[q_rows], r[r_rows], same_set=same_set)
    found = where >= 0
    distance = pd.array([pd.NA] * len(q), dtype="Int64")
    distance[q_rows[found]] = dist[found]
    nearest = np.full(len(q), None, dtype=object)
    nearest[q_rows[found]] = reference["path"].to_numpy()[r_rows[where[found]]]
    return pd.DataFrame(
        {"path": query["path"].to_numpy(), "nearest": nearest, "distance": distance}
    )


def drift_tests(
    eval_frame: "pd.DataFrame", train_frame: "pd.DataFrame", kind: str
) -> "pd.DataFrame":
    """Two-sample tests of eval against train: one row per test with statistic and p-value.

    kind "label": a chi-square test of independence on the 2 x classes table of label counts
    (classes absent from both splits dropped). kind "pixel": two-sample Kolmogorov-Smirnov tests
    on the per-image pixel mean and standard deviation of decodable images.
    """
    import pandas as pd
    from scipy import stats

    if kind == "label":
        split = np.repeat(["eval", "train"], [len(eval_frame), len(train_frame)])
        labels = np.concatenate([eval_frame["label"].to_numpy(), train_frame["label"].to_numpy()])
        table = pd.crosstab(split, labels)
        chi2, p_value, dof, _ = stats.chi2_contingency(table.to_numpy())
        rows = [{"test": "chi2_label", "statistic": chi2, "p_value": p_value, "dof": dof}]
        return pd.DataFrame(rows)
    rows = []
    for column in ("pixel_mean", "pixel_std"):
        a = eval_frame.loc[eval_frame["decodes"], column].to_numpy(dtype=float)
        b = train_frame.loc[train_frame["decodes"], column].to_numpy(dtype=float)
        ks = stats.ks_2samp(a, b)
        rows.append({"test": f"ks_{column}", "statistic": ks.statistic, "p_value": ks.pvalue})
    return pd.DataFrame(rows)
