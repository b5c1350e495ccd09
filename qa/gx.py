"""The only module that imports great_expectations, and only when a data check needs it.

great_expectations takes about two seconds to import, so qa never imports it at start-up:
`qa validate` pays for it only when a suite has a passthrough expectation to construct, and
`qa run` only when a data check must validate an expectation whose outcome it does not know. Everything runs in one ephemeral context (nothing is
written to disk), with analytics and progress bars off.

An expectation's outcome is a function of the frame's contents, the expectation's name and
keyword arguments and GX's version, so it is remembered by those: within a process (`_MEMO`),
and, while a run keeps them in its cache folder (`outcomes_kept_in`), on disk as checked JSON,
so that a re-run whose profiles are cached imports no great_expectations at all. An entry
that does not parse or fails its checksum is a miss; an outcome JSON would not give back
exactly is never stored.
"""

import contextlib
import copy
import dataclasses
import difflib
import functools
import hashlib
import importlib.metadata
import json
import os
import sys
from collections import OrderedDict
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported only where a data check runs
    import pandas as pd

import numpy as np

from qa import cache
from qa.facts import same  # exact equality, type for type
from qa.io import write_text_atomic

MEMO_SIZE = 512  # outcomes kept per process (each a few KB)
_MEMO: OrderedDict[str, "Outcome"] = OrderedDict()
_STORE: ContextVar[Path | None] = ContextVar("qa_gx_store", default=None)
SUFFIX = ".gx.json"  # an outcome's entry in the cache folder
# Expectation fields that are bookkeeping, not parameters a suite author would write.
_INTERNAL_FIELDS = {
    "batch_id",
    "catch_exceptions",
    "description",
    "id",
    "meta",
    "notes",
    "rendered_content",
    "result_format",
    "severity",
    "windows",
}


# Result keys that list every failing row: `failed_rows` has them, reports need not.
_ROW_LISTS = {
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_index_query",
    "partial_unexpected_counts",
}


@dataclass
class Outcome:
    """What one expectation found over one frame.

    `failed_rows` are row positions in the frame that did not meet a per-row expectation
    (empty for aggregate ones such as a column mean); `observed` is the aggregate value, when
    the expectation has one; `result` is GX's result without the row lists, in plain Python
    values; `exception` is why the expectation could not be evaluated.
    """

    name: str
    success: bool
    failed_rows: list[int]
    n_failed: int | None
    observed: Any
    result: dict
    exception: str | None


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # must precede the import
    import great_expectations

    return great_expectations


@functools.cache
def _batch_definition():
    """One ephemeral context and whole-dataframe batch definition, shared by every run."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return (
        context.data_sources.add_pandas("qa")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )


def expectation_names() -> list[str]:
    """Every expectation class great_expectations provides, by class name."""
    gx = _gx()
    base = gx.expectations.Expectation
    return sorted(
        name
        for name in dir(gx.expectations)
        if name.startswith("Expect")
        and isinstance(getattr(gx.expectations, name), type)
        and issubclass(getattr(gx.expectations, name), base)
        and name != "Expectation"
    )


def parameter_names(name: str) -> list[str]:
    """The keyword arguments expectation `name` takes (bookkeeping fields left out)."""
    cls = getattr(_gx().expectations, name)
    return sorted(set(cls.__fields__) - _INTERNAL_FIELDS)


def expectation(name: str, kwargs: dict[str, Any], columns: tuple[str, ...] | None = None):
    """Construct great_expectations expectation `name` with `kwargs`, over `columns` if given.

    Raises ValueError with a one-line reason: for an unknown name the nearest valid names, for
    an unknown keyword the nearest keywords the expectation takes, for a column not in
    `columns` the nearest column, otherwise GX's own reason.
    """
    if columns is not None:
        _check_columns(kwargs, columns)
    names = expectation_names()
    if name not in names:
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(near)}?" if near else f"known: {', '.join(names)}"
        raise ValueError(f"unknown great-expectations expectation {name!r}; {hint}")
    allowed = parameter_names(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        hints = []
        for key in unknown:
            near = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"{key!r} (did you mean {near[0]!r}?)" if near else repr(key))
        raise ValueError(f"{name} does not take {', '.join(hints)}; it takes {', '.join(allowed)}")
    try:
        return getattr(_gx().expectations, name)(**kwargs)
    except Exception as exc:  # GX's pydantic (v1) ValidationError, or its own checks
        reason = " ".join(str(exc).split())
        raise ValueError(f"{name} rejects {kwargs}: {reason}") from None


@contextlib.contextmanager
def outcomes_kept_in(cache_dir: str | Path | None) -> Iterator[None]:
    """Within the block, outcomes are also read from and written to `cache_dir` (none: the
    process memo only)."""
    token = _STORE.set(None if cache_dir is None else Path(cache_dir))
    try:
        yield
    finally:
        _STORE.reset(token)


def check_expectation(
    name: str, kwargs: dict[str, Any], columns: tuple[str, ...], known_in: str | Path | None
) -> None:
    """`expectation`'s checks (ValueError, one line) for a suite's passthrough expectation,
    without importing great_expectations when `known_in` (a run's cache folder) records that
    GX of this version constructed this very name and kwargs before; a construction that
    succeeds now is recorded there."""
    _check_columns(kwargs, columns)
    key = _memo_key("constructs", name, kwargs)
    marker = None if known_in is None or key is None else Path(known_in) / "expectations" / key
    if marker is not None and marker.is_file():
        return
    expectation(name, kwargs)
    if marker is not None:
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()


def run(frame: "pd.DataFrame", specs: list[tuple[str, dict[str, Any]]]) -> list[Outcome]:
    """Validate each (expectation name, kwargs) over `frame`; return their outcomes in order.

    Each is validated on its own (GX does not keep a suite's order in its results), with the
    COMPLETE result format so that every failing row position comes back. Outcomes already
    known (the process memo, then the run's cache folder) are not validated again, and when
    all are known great_expectations is not even imported: `trainer finetune --gate` re-runs
    a suite every epoch, and a warm `qa run` re-runs it on data that did not change.
    """
    digest = _frame_digest(frame)
    outcomes: list[Outcome | None] = [None] * len(specs)
    todo = []
    for i, (name, kwargs) in enumerate(specs):
        key = _memo_key(digest, name, kwargs)
        known = None if key is None else _recall(key)
        if known is not None:
            outcomes[i] = known
        else:
            todo.append((i, expectation(name, kwargs), key))
    if todo:
        batch = _batch_definition().get_batch(
            batch_parameters={"dataframe": frame.reset_index(drop=True)}
        )
        for i, exp, key in todo:
            outcomes[i] = _validate(batch, exp)
            if key is not None:
                _keep(key, outcomes[i])
    return outcomes


def _recall(key: str) -> Outcome | None:
    """The outcome remembered under `key` (a copy), from the memo or the run's folder."""
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return copy.deepcopy(_MEMO[key])
    store = _STORE.get()
    if store is None:
        return None
    try:
        entry = json.loads(cache.entry_path(store, key, SUFFIX).read_text(encoding="utf-8"))
        stored = entry["outcome"]
        if entry["checksum"] != _checksum(stored):
            return None
        outcome = Outcome(**stored)
    except Exception:  # missing, truncated, not JSON, other fields: all mean "validate it"
        return None
    if not _sound(outcome):
        return None
    _remember(key, outcome)
    return copy.deepcopy(outcome)


def _keep(key: str, outcome: Outcome) -> None:
    """Remember `outcome` in the memo, and in the run's folder when JSON gives it back exactly."""
    _remember(key, copy.deepcopy(outcome))
    store = _STORE.get()
    if store is None:
        return
    stored = dataclasses.asdict(outcome)
    try:
        text = json.dumps({"checksum": _checksum(stored), "outcome": stored}, allow_nan=False)
    except (TypeError, ValueError):
        return
    if not same(json.loads(text)["outcome"], stored):
        return
    # the cache only saves time, and a folder that cannot be written is warned of by the engine
    with contextlib.suppress(OSError):
        write_text_atomic(cache.entry_path(store, key, SUFFIX), text)


def _sound(o: Outcome) -> bool:
    """Whether a stored outcome has every field of its type."""
    return (
        isinstance(o.name, str)
        and type(o.success) is bool
        and isinstance(o.failed_rows, list)
        and all(type(i) is int and i >= 0 for i in o.failed_rows)
        and (o.n_failed is None or type(o.n_failed) is int)
        and isinstance(o.result, dict)
        and (o.exception is None or isinstance(o.exception, str))
    )


def _remember(key: str, outcome: Outcome) -> None:
    _MEMO[key] = outcome
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)


def _checksum(stored: dict) -> str:
    return hashlib.sha256(json.dumps(stored, sort_keys=True, allow_nan=False).encode()).hexdigest()


def _validate(batch, exp) -> Outcome:
    r = batch.validate(exp, result_format={"result_format": "COMPLETE"})
    info = r.exception_info or {}
    if "raised_exception" not in info:  # keyed by metric when a metric raised
        info = next(iter(info.values()), {})
    exception = info.get("exception_message") if info.get("raised_exception") else None
    return Outcome(
        name=type(exp).__name__,
        success=bool(r.success),
        failed_rows=[int(i) for i in r.result.get("unexpected_index_list") or []],
        n_failed=r.result.get("unexpected_count"),
        observed=_plain(r.result.get("observed_value")),
        result={k: _plain(v) for k, v in r.result.items() if k not in _ROW_LISTS},
        exception=exception,
    )


def _frame_digest(frame: "pd.DataFrame") -> str:
    """sha256 of the frame's index, column names, dtypes and every value exactly (numeric
    columns by their bytes, others by the repr of their values)."""
    h = hashlib.sha256(repr(list(frame.index)).encode())
    for name, column in frame.items():
        h.update(f"\0{name!r}\0{column.dtype}\0".encode())
        values = column.to_numpy()
        h.update(
            values.tobytes() if values.dtype.kind in "biufcmM" else repr(list(values)).encode()
        )
    return h.hexdigest()


def _memo_key(digest: str, name: str, kwargs: dict[str, Any]) -> str | None:
    """The outcome's key: GX's version, the frame's digest, the expectation's name and its
    keyword arguments as canonical JSON; None when they are not JSON (not remembered)."""
    try:
        config = json.dumps([name, kwargs], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(f"{_version()}\0{digest}\0{config}".encode()).hexdigest()


@functools.cache
def _version() -> str:
    """great_expectations' version, from its installed metadata: importing it costs seconds."""
    if "great_expectations" in sys.modules:
        return str(sys.modules["great_expectations"].__version__)
    return importlib.metadata.version("great_expectations")


def _check_columns(kwargs: dict[str, Any], columns: tuple[str, ...]) -> None:
    for key in ("column", "column_A", "column_B", "column_list"):
        given = kwargs.get(key)
        for column in given if isinstance(given, list) else [] if given is None else [given]:
            if column not in columns:
                near = difflib.get_close_matches(str(column), columns, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise ValueError(
                    f"kwargs.{key}: {column!r} is not a column; {hint}columns: {', '.join(columns)}"
                )


def _plain(value: Any) -> Any:
    """GX's result values as plain Python, all the way down (numpy scalars as numbers, tuples
    as lists): what reports print, and what the cache folder can keep exactly."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
