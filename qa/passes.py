"""The logits views of a run: per split, one decode pass feeding every view still missing.

Views of one split whose models share the image geometry (resize, crop, interpolation) form a
group. For a group, the cache keys need the split's data fingerprint. It comes from the index
of file digests (qa.data_index: a stat per file, no read) when the index knows every file;
otherwise, when some view of the group was ever stored (`cache.seen`), from hashing the files
the index does not know, since hits may then save the pass; otherwise nothing can be cached
for it, and the pass itself hashes the bytes it reads, so that every file is read once.
Views found in the cache are read from it; a group whose views are all cached reads no image.
New entries are keyed on the digests of the bytes the pass decoded, whatever was found before.

The missing views are computed by one pass (qa.inference.run_pass): each decoded batch goes to
every perturbation of the group and every model. Logits stream into one file per view
(cache.EntryWriter) and are read back memory-mapped, so memory does not grow with the number
of views. Without a cache folder they go to a temporary folder that lives as long as the
Evidence.

Sharded (torch.distributed, qa.distributed.Group): rank 0 decides what is missing and
broadcasts it; every rank computes its contiguous shard of every missing view into files of
its own; then, one view at a time, rank 0 gathers the shards and writes the whole view. Only
rank 0 reads or writes the cache.
"""

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa import cache, data, data_index, plugins
from qa.distributed import Group
from qa.evidence import SEED, Split, Stored, View
from qa.precision import device_type

if TYPE_CHECKING:
    from qa.checkpoint import LoadedModel
    from qa.inference import Transform

GEOMETRY = ("resize", "crop", "interpolation")


@dataclass
class Pass:
    """One group: its split, its views, and what the decision found for each."""

    split_name: str
    views: list[View]
    fingerprint: str | None = None
    hits: dict | None = None


def group_views(views: list[View], models: dict) -> list[Pass]:
    """Logits views grouped by split and image geometry: each group is one decode pass."""
    groups: dict[tuple, list[View]] = {}
    for view in views:
        prep = models[view.model].preprocessing
        unit = tuple(prep.get(k, "bilinear") for k in GEOMETRY)
        groups.setdefault((view.split, unit), []).append(view)
    return [Pass(key[0], group) for key, group in groups.items()]


def view_key(view: View, model: "LoadedModel", fingerprint: str | None, settings: dict) -> str:
    """The cache key of one view: what it was computed from and how, never who asked for it.

    The view's kind, perturbation (an attack's every parameter) and severity, the seed of
    perturbations and attacks, the device type and the precision are in it; a corruption also
    keys on the suite's corruption ladder, an adversarial view on the batch size, since PGD's
    random start is drawn per batch. A perturbation from outside qa also keys on its code
    (qa.plugins.perturbation_code), which qa's version does not pin. With `fingerprint` None,
    the key less the data: the "partial" key `cache.seen` records.
    """
    parts = {
        "model": model.digest,
        "arch": model.arch,
        "preprocessing": model.preprocessing,
        "temperature": model.temperature,
        "data": fingerprint,
        "view": [view.kind, view.perturbation, view.severity],
        "seed": SEED,
        "device": device_type(settings["device"]),
        "precision": settings.get("precision", "fp32"),
    }
    if view.kind == "adversarial":
        parts["batch_size"] = settings["batch_size"]
    elif view.perturbation is not None:
        parts["ladder"] = settings.get("ladder", "auto")
        code = plugins.perturbation_code(view.perturbation)
        if code is not None:  # qa's own are pinned by its version, and keep their keys
            parts["code"] = code
    return cache.entry_key(parts)


def compute_logits(
    groups: list[Pass], models: dict, splits: dict[str, Split], settings: dict, shown
) -> dict[View, Stored]:
    """Every logits view of `groups`, cached or computed: a Stored file per view (rank 0),
    nothing on other ranks. `settings` carries device, batch_size, workers, perturb, ladder,
    precision, cache_dir, rehash, folder (where files of a cache-less run go) and group;
    `shown` is the run's qa.progress, told of each pass made or skipped."""
    group: Group = settings["group"]
    stored: dict[View, Stored] = {}
    for p in groups:
        split = splits[p.split_name]
        error, decision = None, None
        if group.rank == 0:
            try:
                decision = _decide(p, models, split, settings)
            except Exception as exc:  # every rank must learn of it, or they would wait forever
                error = exc
        group.check(error)
        fingerprint, hits = group.broadcast(decision)
        p.fingerprint = fingerprint
        todo = [v for v in p.views if v not in hits]
        for view in p.views:
            if view in hits:
                stored[view] = Stored(hits[view])
        if todo:
            stored.update(_compute(p, todo, models, split, settings, shown))
        else:
            shown.skip()
    return stored


def _decide(p: Pass, models: dict, split: Split, settings: dict):
    """(the split's fingerprint, {view: its cached entry}); (None, {}) when no entry can be
    found without reading every file first and none was ever stored for these views."""
    cache_dir, dataset = settings["read_cache"], split.dataset
    if cache_dir is None:
        return None, {}
    # the split was scanned by this run: its stats are the snapshot the run judges
    digests = data_index.known_digests(dataset, cache_dir, settings["rehash"], scanned=True)
    if None in digests:
        partials = [view_key(v, models[v.model], None, settings) for v in p.views]
        if not any(cache.seen(cache_dir, k) for k in partials):
            return None, {}
        fingerprint = data.content_fingerprint(
            dataset, cache_dir, settings["rehash"], writable=settings["cache_dir"] is not None
        )
    else:
        fingerprint = data_index.fingerprint(dataset, digests)
    split.fingerprint = fingerprint
    hits = {}
    for view in p.views:
        key = view_key(view, models[view.model], fingerprint, settings)
        found = cache.find_entry(cache_dir, key, dataset.ids)
        if found is not None:
            hits[view] = found
    return fingerprint, hits


def _compute(p: Pass, todo, models, split: Split, settings, shown) -> dict[View, Stored]:
    """One pass over this rank's shard computing `todo`; rank 0 assembles and stores them."""
    group: Group = settings["group"]
    n = len(split.dataset.ids)
    rows = group.shard(n)
    local = settings["folder"] if group.world == 1 else Path(tempfile.mkdtemp(prefix="qa-shard-"))
    writers = {
        v: cache.EntryWriter(local, len(rows), len(models[v.model].class_names)) for v in todo
    }
    error, digests, started = None, [], time.time_ns()  # files changed after this: not remembered
    try:
        from qa.inference import run_pass  # torch: only when some view must be computed

        shown.start(_label(todo, p.split_name), len(rows))
        transforms = _transforms(todo, models, writers, rows.start)
        digests = run_pass(split, rows, transforms, settings, shown.advance)
        shown.finish()
    except Exception as exc:
        error = exc
    try:
        group.check(error)
    except BaseException:
        for w in writers.values():
            w.discard()
        raise
    everyone = group.all_gather_objects(digests)
    out = {}
    for view in todo:
        whole = _assemble(writers[view], settings, n, len(models[view.model].class_names))
        if whole is not None:
            out[view] = whole
    if local != settings["folder"]:
        shutil.rmtree(local, ignore_errors=True)
    if group.rank != 0:
        return {}
    digests = [d for part in everyone for d in part]
    return _store(p, out, models, split, settings, digests, started)


def _transforms(todo: list[View], models: dict, writers: dict, start: int) -> list["Transform"]:
    """One Transform per perturbation (clean first), each with the models that need it."""
    from qa.inference import Transform

    by_view: dict = {}
    for view in todo:
        transform = (
            None
            if view.perturbation is None
            else View(perturbation=view.perturbation, severity=view.severity, split=view.split)
        )
        by_view.setdefault(transform, []).append((models[view.model], _sink(writers[view], start)))
    return [Transform(view, outputs) for view, outputs in by_view.items()]


def _sink(writer: cache.EntryWriter, start: int):
    def sink(index: np.ndarray, logits: np.ndarray) -> None:
        writer.write(index - start, logits)

    return sink


def _assemble(writer: cache.EntryWriter, settings: dict, n: int, columns: int):
    """This rank's file for a view; with several ranks, rank 0 gathers every shard (one view
    in memory at a time) into a new file of the whole split. None on other ranks."""
    group: Group = settings["group"]
    if group.world == 1:
        return writer
    path = writer.keep()
    try:
        whole = group.gather_rows(np.load(path))
    finally:
        path.unlink(missing_ok=True)
    if whole is None:
        return None
    assembled = cache.EntryWriter(settings["folder"], n, columns)
    assembled.write(np.arange(n), whole)
    return assembled


def _store(p: Pass, writers: dict, models, split: Split, settings, digests, started: int):
    """Commit each finished view as a cache entry (or keep it as a temporary file).

    The entries are keyed on the fingerprint of the bytes the pass decoded (`digests`), not
    the one found before it, so a file replaced meanwhile cannot put its logits under the
    old content's key; the digests are remembered for later runs (`started`: when the pass
    began reading)."""
    cache_dir, dataset = settings["cache_dir"], split.dataset
    if cache_dir is not None:
        data_index.remember(dataset, digests, cache_dir, since_ns=started)
    p.fingerprint = split.fingerprint = data_index.fingerprint(dataset, digests)
    out = {}
    for view, writer in writers.items():
        if cache_dir is None:
            out[view] = Stored(writer.keep())
            continue
        model = models[view.model]
        try:
            out[view] = Stored(
                writer.commit(view_key(view, model, p.fingerprint, settings), dataset.ids)
            )
            cache.mark_seen(cache_dir, view_key(view, model, None, settings))
        except OSError as exc:
            # The cache only saves time: a full disk or read-only folder must not fail the run.
            print(f"warning: cannot write the cache entry ({exc}); continuing", file=sys.stderr)
            out[view] = Stored(writer.keep())
    return out


def _label(views: list[View], split: str) -> str:
    """What one pass computes, for its progress: "candidate + baseline on eval: clean, 60 corrupted"."""
    models = " + ".join(dict.fromkeys(v.model for v in views))
    transforms = {(v.perturbation, v.severity) for v in views}
    clean = (None, None) in transforms
    corrupted = len(transforms) - clean
    parts = (["clean"] if clean else []) + ([f"{corrupted} corrupted"] if corrupted else [])
    return f"{models} on {split}: {', '.join(parts)}"
