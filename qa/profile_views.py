"""Data-profile views: computed once per split, cached on disk as JSON, and what they imply.

A profile (qa.profile) is keyed by the split's content fingerprint (ids and file bytes), its
labels (a manifest may relabel the same files) and PROFILE_FORMAT, so an entry is never stale.

Undecodable files: when a suite checks a split with a kind that reports them (`decodable`:
its parameters set `reports_undecodable`), the files its profile found undecodable are left
out of that split's logits views (and listed in `evidence.info["excluded"]`), so that check
reports them while accuracy and the rest are computed on the files that decode. Without such
a check, the logits pass stops at the first undecodable file with a one-line InputError
naming it (exit 2): a broken file is never skipped silently.
"""

import hashlib
import math
import sys
from typing import TYPE_CHECKING

import numpy as np

from qa import cache
from qa.data import content_fingerprint, subset_dataset
from qa.evidence import View
from qa.profile import COLUMNS, profile_samples
from qa.progress import Silent

if TYPE_CHECKING:
    import pandas as pd

    from qa.inference import Split

PROFILE_FORMAT = 1
_INTEGER_COLUMNS = ("width", "height", "channels", "file_size")
_FLOAT_COLUMNS = ("pixel_mean", "pixel_std")


def profile_key(name: str, split: "Split", cache_dir=None, writable: bool = True) -> str:
    """The cache key of one split's profile (`cache_dir` holds the fingerprint index)."""
    if split.fingerprint is None:
        split.fingerprint = content_fingerprint(split.dataset, cache_dir, writable=writable)
    names = split.dataset.class_names
    labels = "\n".join(names[s.label] for s in split.dataset.samples)
    return cache.entry_key(
        {
            "kind": "profile",
            "profile_format": PROFILE_FORMAT,
            "split": name,
            "data": split.fingerprint,
            "labels": hashlib.sha256(labels.encode()).hexdigest(),
        }
    )


def to_columns(frame: "pd.DataFrame") -> dict[str, list]:
    """A profile as JSON-able columns: missing values (NA, NaN, None) become None."""
    columns = {}
    for name in frame.columns:
        values = frame[name].astype(object).tolist()
        columns[name] = [None if _missing(v) else _plain(v) for v in values]
    return columns


def from_columns(columns: dict[str, list]) -> "pd.DataFrame":
    """The profile `to_columns` wrote, with qa.profile's column types."""
    import pandas as pd

    if list(columns) != list(COLUMNS):
        raise ValueError(f"expected profile columns {list(COLUMNS)}, found {list(columns)}")
    frame = pd.DataFrame(columns)
    for name in _INTEGER_COLUMNS:
        frame[name] = frame[name].astype("Int64")
    for name in _FLOAT_COLUMNS:
        frame[name] = frame[name].astype(float)
    frame["decodes"] = frame["decodes"].astype(bool)
    return frame


def _missing(value) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _plain(value):
    """numpy scalars as Python ones, so json can write them."""
    return value.item() if isinstance(value, np.generic) else value


def compute_profiles(
    views: list[View], splits: dict[str, "Split"], cache_dir, writable: bool = True, shown=None
) -> dict[str, "pd.DataFrame"]:
    """The profile of every split a profile view names, from the cache or by reading its files
    (a pass each, told to `shown`, the run's qa.progress); a profile computed is stored under
    `cache_dir` when it is `writable`."""
    shown = Silent() if shown is None else shown
    profiles = {}
    for name in dict.fromkeys(v.split for v in views if v.kind == "profile"):
        split = splits[name]
        key = profile_key(name, split, cache_dir, writable) if cache_dir is not None else None
        columns = cache.read_table(cache_dir, key) if key is not None else None
        frame = _from_cache(columns)
        if frame is None or len(frame) != len(split.dataset.ids):
            dataset = split.dataset
            shown.start(f"profile of {name}", len(dataset.ids))
            frame = profile_samples(
                dataset.samples,
                dataset.root,
                dataset.class_names,
                name,
                ids=dataset.ids,
                advance=shown.advance,
            )
            shown.finish()
            if key is not None and writable:
                _store(cache_dir, key, frame)
        else:
            shown.skip()
        profiles[name] = frame
    return profiles


def _from_cache(columns: dict | None) -> "pd.DataFrame | None":
    if columns is None:
        return None
    try:
        return from_columns(columns)
    except (ValueError, TypeError, KeyError):  # a sound file of another shape: recompute
        return None


def _store(cache_dir, key: str, frame: "pd.DataFrame") -> None:
    # The cache only saves time: a full disk or read-only folder must not fail the run.
    try:
        cache.write_table(cache_dir, key, to_columns(frame))
    except OSError as exc:
        print(f"warning: cannot write the profile cache entry ({exc}); continuing", file=sys.stderr)


def decodability_checked(suite) -> set[str]:
    """The splits read by a check of the suite that reports undecodable files."""
    return {c.params.split for c in suite.checks if c.params.reports_undecodable}


def drop_undecodable(
    splits: dict[str, "Split"], profiles: dict[str, "pd.DataFrame"], checked: set[str]
) -> dict[str, list[str]]:
    """Leave undecodable files out of the checked splits (in place); their ids per split.

    Only splits in `checked` (read by a check reporting them) with a profile are touched; the
    others keep every file, so the logits pass names the first broken one (see module doc).
    """
    excluded = {}
    for name in sorted(checked & set(profiles)):
        decodes = profiles[name]["decodes"].to_numpy(dtype=bool)
        if decodes.all():
            continue
        split = splits[name]
        excluded[name] = [i for i, ok in zip(split.dataset.ids, decodes, strict=True) if not ok]
        split.dataset = subset_dataset(split.dataset, decodes)
        split.labels = split.labels[decodes]
        split.fingerprint = None
        print(
            f"warning: {name}: {len(excluded[name])} undecodable files left out of inference "
            f"(the decodable check reports them): {', '.join(excluded[name][:3])}",
            file=sys.stderr,
        )
    return excluded
