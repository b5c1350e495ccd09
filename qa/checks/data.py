"""Data family: is the data what we think it is?

Every check reads the data profile of a split (qa.profile: one row per image file) and
compiles its parameters into great-expectations expectations, validated through qa.gx over the
profile itself or over a small frame derived from it (per-class counts, nearest perceptual-hash
distances, a table of test statistics). A failing check names how many samples (or classes)
failed and the first few, so a reader can open the files. The checks that compare
eval with training data (leakage, drift) live in qa.checks.leakage and share the plumbing here
(profile_of, expect, rows_result, near_result).

A check whose profile is missing says so: `skip` when the suite has no such split (the engine
only profiles splits the suite declares), `error` for eval, which every suite has.
"""

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationInfo, model_validator

if TYPE_CHECKING:  # pandas is imported only where a data check runs
    import pandas as pd

from qa import gx
from qa.checks import CheckParams, CheckResult, Stop, gate, register
from qa.checks.params import MaxDistance, MaxFailed, Show
from qa.evidence import Evidence, View
from qa.profile import COLUMNS, nearest_frame, profile_view

Split = Literal["eval", "train", "calibration"]
SHOWN_IN_MESSAGE = 3


def profile_of(evidence: Evidence, split: str) -> "pd.DataFrame":
    """The profile of `split`; Stop: a skip when the suite has no such split, an error for eval."""
    frame = evidence.profiles.get(split)
    if frame is not None:
        return frame
    if split == "eval":
        raise Stop("error", "no data profile of the eval split was computed")
    raise Stop("skip", f"skip: the suite has no {split} split")


def expect(frame: "pd.DataFrame", specs: list[tuple[str, dict]]) -> list[gx.Outcome]:
    """Validate (expectation name, kwargs) pairs over `frame`; Stop on an unevaluable one."""
    outcomes = gx.run(frame, specs)
    for o in outcomes:
        if o.exception:
            raise Stop("error", f"great-expectations could not evaluate {o.name}: {o.exception}")
    return outcomes


class _DataParams(CheckParams):
    """Common to data checks: which split to read and how many failures to list."""

    shows_thumbnails: ClassVar[bool] = True
    split: Split = Field("eval", description="the split whose profile is checked")
    show: Show = 10

    def views(self) -> list[View]:
        """The profile of the checked split."""
        return [profile_view(self.split)]


class _RowParams(_DataParams):
    """A per-sample check: gated on how many samples fail."""

    max_failed: MaxFailed = 0


def _listing(items: list[str], n: int) -> str:
    shown = ", ".join(map(str, items[:SHOWN_IN_MESSAGE]))
    return shown + (f" and {n - SHOWN_IN_MESSAGE} more" if n > SHOWN_IN_MESSAGE else "")


def rows_result(
    frame: "pd.DataFrame", outcomes: list[gx.Outcome], p: CheckParams, what: str, limit: int = 0
) -> CheckResult:
    """Gate on the number of rows any expectation failed; list the first failing paths."""
    failed = sorted(set().union(*(o.failed_rows for o in outcomes)))
    paths = frame["path"].iloc[failed].tolist()
    n, total = len(failed), len(frame)
    metrics = {"n_failed": n, "n_checked": total}
    threshold = {"metric": "n_failed", "op": "<=", "value": limit}
    details = {"failing_paths": paths[: p.show], "expectations": [o.name for o in outcomes]}
    message = f"{n} of {total} samples {what}"
    if n > limit:
        message += f" (at most {limit} allowed)"
    message += f": {_listing(paths, n)}" if n else ""
    return CheckResult("pass" if n <= limit else "fail", message, metrics, threshold, details)


class LabelSetParams(_DataParams):
    """The split's labels must be exactly the checkpoint's classes."""

    example: ClassVar[dict] = {}


@register("label_set", "data", LabelSetParams)
def label_set(evidence: Evidence, p: LabelSetParams) -> CheckResult:
    """The split's label set equals the checkpoint's class names: none missing, none unknown."""
    frame = profile_of(evidence, p.split)
    kwargs = {"column": "label", "value_set": list(evidence.class_names)}
    equal, known = expect(
        frame,
        [("ExpectColumnDistinctValuesToEqualSet", kwargs), ("ExpectColumnValuesToBeInSet", kwargs)],
    )
    missing = sorted(equal.result.get("partial_missing_list") or [])
    unknown = sorted(set(frame["label"].iloc[known.failed_rows]))
    paths = frame["path"].iloc[known.failed_rows].tolist()
    metrics = {"n_missing_classes": len(missing), "n_unknown_classes": len(unknown)}
    metrics.update(n_class_mismatches=len(missing) + len(unknown), n_failed=len(paths))
    result = gate("n_class_mismatches", metrics["n_class_mismatches"], "<=", 0, metrics, "")
    result.details = {"missing_classes": missing, "unknown_classes": unknown}
    result.details["failing_paths"] = paths[: p.show]
    parts = [f"missing {_listing(missing, len(missing))} (no samples)"] if missing else []
    if unknown:
        listed = f"{_listing(unknown, len(unknown))} in {len(paths)} samples"
        parts.append(f"unknown {listed}: {_listing(paths, len(paths))}")
    result.message = (
        f"the {p.split} labels differ from the checkpoint's classes: {'; '.join(parts)}"
        if parts
        else f"the {p.split} labels are the checkpoint's {len(evidence.class_names)} classes"
    )
    return result


def _class_counts(evidence: Evidence, split: str) -> "pd.DataFrame":
    """Samples per checkpoint class in `split`, zero for a class with none, in class order."""
    classes = list(evidence.class_names)
    counts = profile_of(evidence, split)["label"].value_counts().reindex(classes, fill_value=0)
    import pandas as pd

    return pd.DataFrame({"class": classes, "count": counts.to_numpy(dtype=np.int64)})


def _class_result(
    counts: "pd.DataFrame", min_count: float, metrics: dict, threshold: dict, what: str
) -> CheckResult:
    """Expect every class count >= `min_count`; the failing classes are listed."""
    kwargs = {"column": "count", "min_value": min_count}
    (outcome,) = expect(counts, [("ExpectColumnValuesToBeBetween", kwargs)])
    bad = counts.iloc[outcome.failed_rows]
    failing = [f"{c} ({n})" for c, n in zip(bad["class"], bad["count"], strict=True)]
    metrics["n_failed"] = len(failing)
    details = {"counts": dict(zip(counts["class"], counts["count"].tolist(), strict=True))}
    details["failing_classes"] = bad["class"].tolist()
    if outcome.success:
        return CheckResult("pass", what, metrics, threshold, details)
    message = f"{what}; {len(failing)} classes below: {_listing(failing, len(failing))}"
    return CheckResult("fail", message, metrics, threshold, details)


class MinSamplesParams(_DataParams):
    """Every class needs at least `min` samples."""

    min: int = Field(ge=1, description="fewest samples a class may have")
    example: ClassVar[dict] = {"min": 1}


@register("min_samples_per_class", "data", MinSamplesParams)
def min_samples_per_class(evidence: Evidence, p: MinSamplesParams) -> CheckResult:
    """Every checkpoint class has at least `min` samples in the split."""
    counts = _class_counts(evidence, p.split)
    fewest = int(counts["count"].min())
    metrics = {"min_class_count": fewest}
    threshold = {"metric": "min_class_count", "op": ">=", "value": p.min}
    what = f"smallest class has {fewest} samples (at least {p.min} required)"
    return _class_result(counts, p.min, metrics, threshold, what)


class ClassBalanceParams(_DataParams):
    """The largest class may be at most `max_ratio` times the smallest."""

    max_ratio: float = Field(ge=1, description="largest allowed ratio of biggest to smallest class")
    example: ClassVar[dict] = {"max_ratio": 10.0}


@register("class_balance", "data", ClassBalanceParams)
def class_balance(evidence: Evidence, p: ClassBalanceParams) -> CheckResult:
    """The biggest class is at most `max_ratio` times the smallest (every class counted)."""
    counts = _class_counts(evidence, p.split)
    biggest, smallest = int(counts["count"].max()), int(counts["count"].min())
    ratio = biggest / smallest if smallest else float("inf")
    metrics = {"imbalance_ratio": ratio, "max_class_count": biggest, "min_class_count": smallest}
    threshold = {"metric": "imbalance_ratio", "op": "<=", "value": p.max_ratio}
    what = f"class size ratio {ratio:.2f} ({biggest}/{smallest}; at most {p.max_ratio:g} allowed)"
    # max/min <= r is every count >= max/r: the failing rows are the under-represented classes
    return _class_result(counts, biggest / p.max_ratio, metrics, threshold, what)


class ImageSizeParams(_RowParams):
    """Bounds on image width and height in pixels, and the allowed PIL modes."""

    min_width: int | None = Field(None, ge=1, description="smallest allowed width")
    max_width: int | None = Field(None, ge=1, description="largest allowed width")
    min_height: int | None = Field(None, ge=1, description="smallest allowed height")
    max_height: int | None = Field(None, ge=1, description="largest allowed height")
    modes: list[str] | None = Field(None, min_length=1, description="allowed PIL modes, e.g. [RGB]")
    example: ClassVar[dict] = {"min_width": 8, "min_height": 8}

    @model_validator(mode="after")
    def _some_bound(self):
        bounds = (self.min_width, self.max_width, self.min_height, self.max_height, self.modes)
        if all(b is None for b in bounds):
            raise ValueError(
                "give at least one of min_width, max_width, min_height, max_height, modes"
            )
        return self


@register("image_size", "data", ImageSizeParams)
def image_size(evidence: Evidence, p: ImageSizeParams) -> CheckResult:
    """Every decodable image's width, height and mode are within the given bounds."""
    frame = profile_of(evidence, p.split)
    specs = [
        ("ExpectColumnValuesToBeBetween", {"column": column, "min_value": low, "max_value": high})
        for column, low, high in (
            ("width", p.min_width, p.max_width),
            ("height", p.min_height, p.max_height),
        )
        if low is not None or high is not None
    ]
    if p.modes is not None:
        specs.append(("ExpectColumnValuesToBeInSet", {"column": "mode", "value_set": p.modes}))
    return rows_result(frame, expect(frame, specs), p, "are out of bounds", p.max_failed)


class DecodableParams(_RowParams):
    """Every file must be readable and decode as an image."""

    reports_undecodable: ClassVar[bool] = True
    example: ClassVar[dict] = {}


@register("decodable", "data", DecodableParams)
def decodable(evidence: Evidence, p: DecodableParams) -> CheckResult:
    """Every file of the split can be read and decoded; undecodable ones are listed with why."""
    frame = profile_of(evidence, p.split)
    kwargs = {"column": "decodes", "value_set": [True]}
    outcomes = expect(frame, [("ExpectColumnValuesToBeInSet", kwargs)])
    result = rows_result(frame, outcomes, p, "cannot be decoded", p.max_failed)
    bad = frame.iloc[outcomes[0].failed_rows[: p.show]]
    result.details["errors"] = dict(zip(bad["path"], bad["error"], strict=True))
    return result


class DuplicateParams(_RowParams):
    """No two files of the split may have the same bytes."""

    example: ClassVar[dict] = {}


@register("exact_duplicates", "data", DuplicateParams)
def exact_duplicates(evidence: Evidence, p: DuplicateParams) -> CheckResult:
    """No byte-identical files (same sha256) within the split; every copy counts as failing."""
    frame = profile_of(evidence, p.split)
    outcomes = expect(frame, [("ExpectColumnValuesToBeUnique", {"column": "sha256"})])
    result = rows_result(frame, outcomes, p, "are byte-identical copies", p.max_failed)
    dup = frame.iloc[outcomes[0].failed_rows]
    groups = dup.groupby("sha256", sort=False)["path"].apply(list).tolist()
    result.metrics["n_groups"] = len(groups)
    result.details["groups"] = groups[: p.show]
    return result


def near_result(near: "pd.DataFrame", p: CheckParams, what: str) -> CheckResult:
    """Expect every nearest distance above `max_distance`; list the offending pairs."""
    kwargs = {"column": "distance", "min_value": p.max_distance + 1}
    outcomes = expect(near, [("ExpectColumnValuesToBeBetween", kwargs)])
    result = rows_result(near, outcomes, p, what, p.max_failed)
    pairs = near.iloc[outcomes[0].failed_rows[: p.show]]
    result.details["pairs"] = [
        {"path": a, "nearest": b, "distance": int(d)}
        for a, b, d in zip(pairs["path"], pairs["nearest"], pairs["distance"], strict=True)
    ]
    result.metrics["max_distance"] = p.max_distance
    return result


class NearDuplicateParams(_RowParams):
    """No two images of the split may have perceptual hashes within `max_distance` bits."""

    max_distance: MaxDistance = 4
    example: ClassVar[dict] = {}


@register("near_duplicates", "data", NearDuplicateParams)
def near_duplicates(evidence: Evidence, p: NearDuplicateParams) -> CheckResult:
    """No image has another of the split within `max_distance` bits of perceptual hash."""
    frame = profile_of(evidence, p.split)
    near = nearest_frame(frame, frame, same_set=True)
    return near_result(near, p, f"have a near-duplicate (<= {p.max_distance} bits)")


class ExpectationParams(_DataParams):
    """Any great-expectations expectation, by class name, over the profile's columns."""

    expectation: str = Field(description="class name, e.g. ExpectColumnValuesToBeBetween")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="its keyword arguments")
    example: ClassVar[dict] = {
        "expectation": "ExpectColumnValuesToBeBetween",
        "kwargs": {"column": "width", "min_value": 1},
    }

    @model_validator(mode="after")
    def _constructs(self, info: ValidationInfo):
        """Build the expectation now, so `qa validate` rejects a bad name or keyword (unless
        the run's cache folder, the validation context's `cache_dir`, says it was built)."""
        known_in = (info.context or {}).get("cache_dir")
        gx.check_expectation(self.expectation, self.kwargs, COLUMNS, known_in)
        return self


@register("expectation", "data", ExpectationParams)
def expectation(evidence: Evidence, p: ExpectationParams) -> CheckResult:
    """A great-expectations expectation named in the suite holds over the split's profile."""
    frame = profile_of(evidence, p.split)
    (outcome,) = expect(frame, [(p.expectation, p.kwargs)])
    paths = frame["path"].iloc[outcome.failed_rows].tolist()
    metrics: dict[str, Any] = {"success": int(outcome.success)}
    if outcome.n_failed is not None:
        metrics["n_failed"] = int(outcome.n_failed)
    if isinstance(outcome.observed, int | float | np.number) and outcome.observed is not True:
        metrics["observed_value"] = float(outcome.observed)
    threshold = {"metric": "success", "op": ">=", "value": 1}
    details = {"expectation": p.expectation, "kwargs": dict(p.kwargs), "result": outcome.result}
    details["failing_paths"] = paths[: p.show]
    args = ", ".join(f"{k}={v!r}" for k, v in p.kwargs.items())
    message = f"{p.expectation}({args}) on {p.split} " + ("holds" if outcome.success else "fails")
    if paths:
        message += f"; {len(paths)} samples fail: {_listing(paths, len(paths))}"
    if "observed_value" in metrics:
        message += f"; observed {metrics['observed_value']:g}"
    status = "pass" if outcome.success else "fail"
    return CheckResult(status, message, metrics, threshold, details)
