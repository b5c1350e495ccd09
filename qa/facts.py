"""What a run knows of a checkpoint without loading it: the facts record, so that a re-run whose
views are all cached never imports torch.

Checks and cache keys need a model's plain facts (architecture, class names, preprocessing,
provenance, temperature) and the sha256 of its file, not its weights. After a checkpoint has
been loaded and validated (qa.formats), `load_checkpoint` stores those facts in the cache folder
as JSON, keyed by the file's sha256, the suite's `model:` (which describes files that do not
describe themselves) and whether the file was trusted. A later run reads the file's bytes,
hashes them (hashlib: no torch), and with a record for that digest gets a `LazyModel`: the
facts, and a module loaded from those very bytes only when something asks for it (a view the
cache lacks). A file with other bytes has another key, so it is never served another file's
facts. A record is data, checked like every cache entry (a checksum over its facts, every
key and type), never code; facts that JSON would not give back exactly are not stored.
"""

import base64
import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import numpy as np

from qa import cache, data_index
from qa.errors import InputError
from qa.io import write_text_atomic
from qa.torchfile import FileBytes, read_file

SUFFIX = ".facts.json"
KEYS = ("arch", "class_names", "preprocessing", "provenance", "temperature")
ARRAY = "__array__"  # how a record holds an array (a trained checkpoint's data fingerprint)


def facts_of(model) -> dict:
    """A loaded model's facts (qa.checkpoint.LoadedModel or LazyModel): what a record holds."""
    return {
        "arch": model.arch,
        "class_names": list(model.class_names),
        "preprocessing": dict(model.preprocessing),
        "provenance": dict(model.provenance),
        "temperature": float(model.temperature),
    }


class LazyModel:
    """A checkpoint's facts, from its record; `module` loads the file on first use, from the
    bytes already read (`blob`) or read then, which must have the digest the facts and views
    were keyed on. A LoadedModel to everything that reads it (qa.engine)."""

    def __init__(
        self,
        path: str | Path,
        digest: str,
        facts: dict,
        load: Callable[[FileBytes], object],
        blob: FileBytes | None = None,
    ):
        self.path, self.digest = str(path), digest
        self.arch, self.class_names = facts["arch"], list(facts["class_names"])
        self.preprocessing, self.provenance = (
            dict(facts["preprocessing"]),
            dict(facts["provenance"]),
        )
        self.temperature = float(facts["temperature"])
        self._blob, self._load = blob, load

    @cached_property
    def module(self):
        """The model itself, loaded now (this imports torch), from the bytes whose digest keyed
        every view; a loaded model whose facts are not the record's is a bug, not a stale view."""
        blob = self._blob or read_file(self.path)
        if blob.digest != self.digest:
            raise InputError(
                f"{self.path}: the checkpoint changed during the run (its sha256 is no longer "
                "the one this run's facts and cached views are keyed on); run again"
            )
        loaded = self._load(blob)
        if not same(facts_of(loaded), facts_of(self)):
            raise RuntimeError(f"{self.path}: the cached facts record disagrees with the file")
        self._blob = None  # the bytes are loaded; nothing else needs them
        return loaded.module


def load_checkpoint(
    path: str | Path,
    spec,
    trust: bool,
    cache_dir: str | Path | None,
    load: Callable[[FileBytes], object],
    writable: bool = True,
    rehash: bool = False,
):
    """The checkpoint at `path` as a LazyModel when the cache holds its facts, else loaded now.

    `spec` is the suite's `model:` (qa.suite.ModelSpec or None), `load` turns the file's bytes
    into a LoadedModel (qa.formats.load_bytes with `spec` and `trust`). A model loaded now has
    its facts stored for the next run (where `writable`: a cache folder that cannot be written
    costs nothing here; the engine warns of it). `rehash` hashes the file even when the
    digest index vouches for it (`qa run --rehash`).
    """
    if cache_dir is None:
        return load(read_file(path))
    digest = None if rehash else data_index.file_digest(path, cache_dir)
    if digest is not None:
        facts = read_facts(cache_dir, facts_key(digest, spec, trust))
        if facts is not None:
            return LazyModel(path, digest, facts, load)
    since = time.time_ns()  # before the read: a file changed after it is not remembered
    blob = read_file(path)
    if writable:
        data_index.remember_file(path, blob.digest, cache_dir, since)
    key = facts_key(blob.digest, spec, trust)
    facts = read_facts(cache_dir, key)
    if facts is not None:
        return LazyModel(path, blob.digest, facts, load, blob)
    model = load(blob)
    if writable:
        with contextlib.suppress(OSError):
            write_facts(cache_dir, key, facts_of(model))
    return model


def facts_key(digest: str, spec, trust: bool) -> str:
    """The record's key: the file's sha256, the suite's `model:` and the trust it was loaded
    with (with qa's version and the cache format, as every entry's)."""
    described = None if spec is None else spec.model_dump(mode="json")
    return cache.entry_key({"facts": digest, "model_spec": described, "trust": bool(trust)})


def write_facts(cache_dir: str | Path, key: str, facts: dict) -> None:
    """Store `facts` under `key`, only if the record gives them back exactly (no tuples, no
    keys that are not strings, no NaN; arrays, such as a trained checkpoint's data fingerprint,
    by dtype, shape and bytes): a record must never change what a check sees."""
    try:
        stored = _encode(facts)
        text = _canonical(stored)
    except (TypeError, ValueError):
        return
    if not same(_decode(json.loads(text)), facts):
        return
    record = {"checksum": hashlib.sha256(text.encode()).hexdigest(), "facts": stored}
    write_text_atomic(cache.entry_path(cache_dir, key, SUFFIX), json.dumps(record))


def read_facts(cache_dir: str | Path, key: str) -> dict | None:
    """The facts stored under `key`, or None when there are none or the record is unsound
    (unparsable, a checksum or a key or type that disagrees)."""
    path = cache.entry_path(cache_dir, key, SUFFIX)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        stored = record["facts"]
        facts = _decode(stored)
        sound = _sound(facts) and record["checksum"] == (
            hashlib.sha256(_canonical(stored).encode()).hexdigest()
        )
    except Exception:  # missing, truncated, not JSON, wrong shape: all mean "load the file"
        return None
    return facts if sound else None


def _canonical(facts: dict) -> str:
    return json.dumps(facts, sort_keys=True, allow_nan=False)


def _sound(facts) -> bool:
    """Every key of a record, each of its type."""
    if not isinstance(facts, dict) or sorted(facts) != sorted(KEYS):
        return False
    names, temperature = facts["class_names"], facts["temperature"]
    return (
        isinstance(facts["arch"], str)
        and isinstance(names, list)
        and bool(names)
        and all(isinstance(n, str) for n in names)
        and isinstance(facts["preprocessing"], dict)
        and isinstance(facts["provenance"], dict)
        and isinstance(temperature, float)
        and math.isfinite(temperature)
        and temperature > 0
    )


def same(a, b) -> bool:
    """Whether two facts are the same exactly: values of the same type and value, arrays
    (numpy or torch) of the same dtype, shape and bytes."""
    if _is_array(a) or _is_array(b):
        if not (_is_array(a) and _is_array(b)):
            return False
        x, y = _numpy(a), _numpy(b)
        return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray) or (
        type(value).__module__.partition(".")[0] == "torch" and hasattr(value, "numpy")
    )


def _numpy(value) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else value.detach().cpu().numpy()


def _encode(value):
    """Facts as JSON values: an array becomes {"__array__": [dtype, shape, base64 bytes]}."""
    if _is_array(value):
        array = np.ascontiguousarray(_numpy(value))
        if array.dtype.hasobject:
            raise TypeError("an array of Python objects is not a fact")
        data = base64.b64encode(array.tobytes()).decode()
        return {ARRAY: [array.dtype.str, list(array.shape), data]}
    if isinstance(value, dict):
        if ARRAY in value:
            raise ValueError(f"a fact may not have the key {ARRAY}")
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value):
    """`_encode`'s inverse: its arrays back as numpy arrays (read-only)."""
    if isinstance(value, dict):
        if list(value) == [ARRAY]:
            dtype, shape, data = value[ARRAY]
            array = np.frombuffer(base64.b64decode(data, validate=True), dtype=np.dtype(dtype))
            return array.reshape([int(n) for n in shape])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
