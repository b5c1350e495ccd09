"""Evidence: everything the engine computed once per run, shared read-only by every check."""

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.metrics.intervals import DEFAULT_CONFIDENCE, DEFAULT_METHOD

if TYPE_CHECKING:
    import pandas as pd

    from qa.data import Dataset

SEED = 0  # the seed of perturbations and attacks: part of every cache key


@dataclass
class Split:
    """One split's data, its labels as indices into the candidate's classes, its fingerprint."""

    dataset: "Dataset"
    labels: np.ndarray
    fingerprint: str | None = None


@dataclass(frozen=True)
class View:
    """One thing the engine must compute: a pass of one model over one split under one transform.

    kind "logits" is a forward pass; later families add kinds ("profile", "adversarial").
    `perturbation` and `severity` name a corruption applied to the decoded images first.
    """

    kind: str = "logits"
    model: str = "candidate"  # "candidate" or "baseline"
    split: str = "eval"
    perturbation: str | None = None
    severity: int | None = None

    def name(self, sep: str = " ") -> str:
        """What the images went through: "clean", an attack's name, or a corruption at its
        severity, "gaussian_noise s3" (`sep` before the severity; the predictions file uses "-")."""
        if self.kind == "adversarial" or self.perturbation is None:
            return self.perturbation or "clean"
        return f"{self.perturbation}{sep}s{self.severity}"

    def label(self) -> str:
        """A short human name, used in messages and reports."""
        return f"{self.kind} of {self.model} on {self.split} ({self.name()})"


CLEAN = View()
BASELINE = View(model="baseline")  # the baseline's clean eval logits


@dataclass(frozen=True)
class Stored:
    """A view's logits in a .npy file (a cache entry, or a run's temporary file): `columns`
    reorders its columns (a baseline's classes into the candidate's order), `rows` keeps the
    rows where it is true (a slice) when the array has as many rows."""

    path: Path
    columns: np.ndarray | None = None
    rows: np.ndarray | None = None

    def load(self) -> np.ndarray:
        """The logits, memory-mapped when neither columns nor rows are selected."""
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if self.columns is not None:
            array = array[:, self.columns]
        if self.rows is not None and len(array) == len(self.rows):
            array = array[self.rows]
        return array


class ViewArrays(MutableMapping):
    """The logits of every view, by View: in-memory arrays, or Stored files opened anew on each
    access, so that a check holds only the views it is reading and peak memory does not grow
    with the number of views. `keep` holds what must live as long as the files (a run's
    temporary folder when it has no cache)."""

    def __init__(self, items: Mapping | None = None, keep: object = None):
        self._items = dict(items or {})
        self._keep = keep

    def __getitem__(self, view: View) -> np.ndarray:
        item = self._items[view]
        return item.load() if isinstance(item, Stored) else item

    def __setitem__(self, view: View, array: "np.ndarray | Stored") -> None:
        self._items[view] = array

    def __delitem__(self, view: View) -> None:
        del self._items[view]

    def __iter__(self) -> Iterator[View]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def subset(self, mask: np.ndarray) -> "ViewArrays":
        """The same views with the eval split's restricted to the rows where `mask` is true;
        other splits' views (train, calibration) are kept whole, whatever their length."""
        items = {}
        for view, item in self._items.items():
            if view.split != "eval":
                items[view] = item
            elif isinstance(item, Stored):
                items[view] = replace(item, rows=_within(item.rows, mask))
            else:
                items[view] = item[mask] if len(item) == len(mask) else item
        return ViewArrays(items, self._keep)


def _within(rows: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    """The rows of the whole array that `mask` keeps, when `mask` selects among `rows`."""
    if rows is None or len(mask) != np.count_nonzero(rows):
        return mask
    combined = np.zeros(len(rows), dtype=bool)
    combined[np.flatnonzero(rows)[mask]] = True
    return combined


@dataclass
class Evidence:
    """Labels, ids, metadata and per-view arrays for the eval split (and what else was planned).

    `arrays[view]` holds logits (N, C) float32 for logits views, already divided by the
    model's temperature (a ViewArrays: files are opened on access, memory-mapped). Checks read from here only; they never run models or read files.
    """

    class_names: list[str]
    labels: np.ndarray  # (N,) int64
    sample_ids: list[str]  # (N,) stable ids: relative paths
    arrays: Mapping[View, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, np.ndarray] = field(default_factory=dict)  # manifest columns, per sample
    split_labels: dict[str, np.ndarray] = field(default_factory=dict)  # labels of non-eval splits
    split_ids: dict[str, list[str]] = field(default_factory=dict)  # their sample ids, in order
    # the suite's `defaults`, which the runner sets; these defaults are the suite's own
    confidence: float = DEFAULT_CONFIDENCE
    interval_method: str = DEFAULT_METHOD  # binomial intervals: "wilson" or "clopper_pearson"
    # "candidate" and "baseline" (None without one): each model's facts (model_facts)
    model_facts: dict[str, dict | None] = field(default_factory=dict)
    # "excluded": per split, the ids of undecodable files left out of inference
    info: dict = field(default_factory=dict)
    profiles: dict[str, "pd.DataFrame"] = field(default_factory=dict)  # split -> qa.profile table

    def __post_init__(self):
        if not isinstance(self.arrays, ViewArrays):
            self.arrays = ViewArrays(self.arrays)

    def logits(self, view: View = CLEAN) -> np.ndarray:
        """The logits of one planned view; a KeyError here is a planning bug, not user input."""
        return self.arrays[view]

    def subset(self, mask: np.ndarray) -> "Evidence":
        """The same evidence restricted to the samples where `mask` is true (for slices)."""
        mask = np.asarray(mask, dtype=bool)
        ids = [s for s, keep in zip(self.sample_ids, mask, strict=True) if keep]
        return replace(
            self,
            labels=self.labels[mask],
            sample_ids=ids,
            arrays=self.arrays.subset(mask),
            metadata={k: v[mask] for k, v in self.metadata.items()},
        )


def model_facts(model) -> dict | None:
    """A loaded model's facts as plain data (None for no model): what checks may know of it.

    `model` is a qa.checkpoint.LoadedModel. The provenance is whole, the data fingerprint's
    hashes included (the leakage check reads them); reports show qa.result.model_summary of it.
    """
    if model is None:
        return None
    return {
        "path": model.path,
        "sha256": model.digest,
        "arch": model.arch,
        "class_names": list(model.class_names),
        "preprocessing": dict(model.preprocessing),
        "temperature": model.temperature,
        "provenance": dict(model.provenance),
    }
