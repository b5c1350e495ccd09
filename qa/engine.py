"""The engine (the evidence builder): infer once, check many. An EvidenceRequest in, Evidence out.

Profile views (qa.profile_views) read each file of a split once. Logits views are computed by
one decode pass per split (qa.passes): every image is read and decoded once, and each batch
goes to every view of the split still missing from the cache, clean and every perturbation,
candidate and baseline; the logits stream into files read back memory-mapped. Adversarial
views take an attack pass each (qa.inference.infer_adversarial).

Every view is cached on disk by content (qa.cache), so a re-run after a threshold edit reads
it back instead of running a model; changing one image, the checkpoint, the view or qa's
version recomputes. With several torch.distributed ranks each computes a shard of every pass
and rank 0 assembles the views (qa.passes). The engine knows nothing of suites, checks or
reports: the application (qa.application) turns a suite into a request and the evidence into a
verdict.
"""

import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa import cache, data, passes, profile_views, progress
from qa.data import labels_for, load_dataset
from qa.distributed import SINGLE, Group
from qa.errors import InputError
from qa.evidence import Evidence, Split, Stored, View, ViewArrays, model_facts
from qa.passes import GEOMETRY

if TYPE_CHECKING:  # torch is imported by the passes that compute a view, not by the engine
    import torch

    from qa.checkpoint import LoadedModel
    from qa.inference import Perturb


@dataclass
class EvidenceRequest:
    """What build_evidence needs, and nothing of the suite it came from.

    splits      the data, loaded by load_splits: "eval", and every split a view reads; labels
                index the candidate's classes. A split named in `undecodable_reported` loses
                its undecodable files here, in place, so the caller's ids match the logits
    models      "candidate" (a LoadedModel) and "baseline" (a LoadedModel, or None)
    views       what to compute (qa.runner.plan); a view this engine cannot compute is left out
    device      where the passes run; batch_size  images per batch (adversarial views are
                keyed on it); workers  decoding processes (None: qa.inference.default_workers)
    cache_dir   where views are cached by content; None computes everything and caches nothing
    perturb     the hook applying a corruption View to a batch; None leaves such views out
    ladder      the suite's corruption ladder: corruption views are keyed on it
    undecodable_reported  splits read by a check that reports undecodable files (their profile
                says which: qa.profile_views); elsewhere the first one stops the run
    progress    whether to show the passes' progress on stderr (qa.progress)
    precision   the forward pass's precision, one of qa.precision.PRECISIONS, resolved for the
                device (qa.precision.resolve); part of every logits view's cache key
    rehash      hash every data file's content again instead of trusting the (path, size,
                mtime) index
    group       the torch.distributed ranks sharing the passes (qa.distributed); SINGLE alone
    """

    splits: dict[str, Split]
    models: "dict[str, LoadedModel | None]"
    views: list[View]
    device: "torch.device | str" = "cpu"
    batch_size: int = 256
    workers: int | None = None
    cache_dir: str | Path | None = cache.DEFAULT_DIR
    perturb: "Perturb | None" = None
    ladder: str = "auto"
    undecodable_reported: set[str] = field(default_factory=set)
    progress: bool = True
    precision: str = "fp32"
    rehash: bool = False
    group: Group = SINGLE


def load_splits(specs: dict, views: list[View], class_names: list[str]) -> dict[str, Split]:
    """Scan every split the views read (eval always) and match its classes to the model's.

    `specs` are the suite's data splits (Suite.data.splits()), by name.
    """
    names = dict.fromkeys(["eval", *(v.split for v in views)])
    splits = {}
    for name in names:
        dataset = load_dataset(specs[name])
        splits[name] = Split(dataset, labels_for(dataset, class_names))
    return splits


def column_order(baseline: "LoadedModel", candidate: "LoadedModel") -> np.ndarray:
    """Indices that reorder the baseline's logit columns into the candidate's class order.

    Classes are matched by name, so a baseline listing the same classes in another order is
    compared correctly. Different class names, or a different resize, crop or interpolation
    (the pixels both models must share for paired comparisons), are unusable input: one
    InputError line showing the difference. Mean and std may differ: each model normalises
    the shared [0, 1] images its own way.
    """
    where = f"baseline {baseline.path}"
    names, theirs = candidate.class_names, baseline.class_names
    if sorted(theirs) != sorted(names):
        missing = [c for c in names if c not in theirs]
        extra = [c for c in theirs if c not in names]
        raise InputError(
            f"{where}: class names differ from the candidate's: missing {missing}, extra {extra}"
        )
    diffs = [
        f"{k} {baseline.preprocessing.get(k)} vs {candidate.preprocessing.get(k)}"
        for k in GEOMETRY
        if baseline.preprocessing.get(k) != candidate.preprocessing.get(k)
    ]
    if diffs:
        raise InputError(
            f"{where}: preprocessing differs from the candidate's "
            f"(baseline vs candidate): {', '.join(diffs)}"
        )
    return np.array([theirs.index(c) for c in names])


def build_evidence(request: EvidenceRequest) -> Evidence | None:
    """Compute (or read from the cache) every view of the request into one Evidence.

    Profiles first (they decide which undecodable files are left out of inference), then the
    logits views, one decode pass per split (qa.passes), then adversarial views, a pass each.
    A view this engine cannot compute (a perturbation without a `perturb` hook, an unknown
    kind) is left out: the check that asked for it reports an error naming it. The baseline's
    logit columns are put in the candidate's class order (column_order). `evidence.model_facts`
    holds each model's facts (qa.evidence.model_facts), `evidence.info["excluded"]` the ids left
    out per split. With several ranks (request.group), every rank computes its shard and only
    rank 0 gets the Evidence; the others get None.
    """
    models, group = request.models, request.group
    candidate, baseline = models["candidate"], models.get("baseline")
    orders = {"candidate": None}
    if baseline is not None:
        orders["baseline"] = column_order(baseline, candidate)
    splits, views, cache_dir = request.splits, request.views, request.cache_dir
    keep, folder, writable = _folder(cache_dir, group)  # a read-only cache: one warning
    settings = dict(
        device=request.device,
        batch_size=request.batch_size,
        workers=request.workers,
        perturb=request.perturb,
        orders=orders,
        ladder=request.ladder,
        precision=request.precision,
        rehash=request.rehash,
        cache_dir=cache_dir if writable else None,
        read_cache=cache_dir,
        folder=folder,
        group=group,
    )
    computable = [v for v in views if _computable(v, models, request.perturb)]
    groups = passes.group_views([v for v in computable if v.kind == "logits"], models)
    attacks = [v for v in computable if v.kind == "adversarial"]
    planned = _planned(views, groups, attacks, splits, group)
    with progress.progress(request.progress and group.rank == 0, planned) as shown:
        profiles = profile_views.compute_profiles(views, splits, cache_dir, writable, shown)
        excluded = profile_views.drop_undecodable(splits, profiles, request.undecodable_reported)
        stored = passes.compute_logits(groups, models, splits, settings, shown)
        if group.rank == 0:
            stored.update(_adversarial(attacks, models, splits, settings, shown))
    if group.rank != 0:
        return None
    arrays = {view: replace(item, columns=orders[view.model]) for view, item in stored.items()}
    evaluation = splits["eval"]
    return Evidence(
        class_names=list(candidate.class_names),
        labels=evaluation.labels,
        sample_ids=list(evaluation.dataset.ids),
        arrays=ViewArrays(arrays, keep),
        metadata=dict(evaluation.dataset.metadata),
        split_labels={k: s.labels for k, s in splits.items() if k != "eval"},
        split_ids={k: list(s.dataset.ids) for k, s in splits.items() if k != "eval"},
        model_facts={"candidate": model_facts(candidate), "baseline": model_facts(baseline)},
        info={"excluded": excluded},
        profiles=profiles,
    )


def _folder(cache_dir, group):
    """(what keeps it alive, where view files are written, whether cache_dir takes entries).

    The cache folder itself when it can be written (entries are renamed into place from it);
    otherwise a temporary folder removed when the Evidence is, and, for a read-only cache, one
    warning: its hits are still read.
    """
    if cache_dir is not None and group.rank == 0:
        try:
            cache.probe(cache_dir)
            return None, Path(cache_dir), True
        except OSError as exc:
            print(f"warning: cannot write the cache entry ({exc}); continuing", file=sys.stderr)
    temporary = tempfile.TemporaryDirectory(prefix="qa-views-")
    return temporary, Path(temporary.name), False


def _planned(views, groups, attacks, splits, group: Group) -> list[int]:
    """The images of each pass the run may make, in the order it makes them: a profile per
    split, a decode pass per group (this rank's shard), an attack pass per adversarial view."""
    profiled = dict.fromkeys(v.split for v in views if v.kind == "profile")
    sizes = [len(splits[name].dataset.ids) for name in profiled]
    sizes += [len(group.shard(len(splits[p.split_name].dataset.ids))) for p in groups]
    return sizes + [len(splits[v.split].dataset.ids) for v in attacks]


def _computable(view: View, models: dict, perturb: "Perturb | None") -> bool:
    """Whether this engine can compute `view` with the models and hooks it was given."""
    if models.get(view.model) is None:
        return False
    if view.kind == "adversarial":
        return view.perturbation is not None
    return view.kind == "logits" and (view.perturbation is None or perturb is not None)


def _adversarial(views: list[View], models, splits, settings, shown) -> dict[View, Stored]:
    """Each adversarial view from the cache or by an attack pass of its own (rank 0 only)."""
    cache_dir, out = settings["read_cache"], {}
    for view in views:
        split, model = splits[view.split], models[view.model]
        key = None
        if cache_dir is not None:
            if split.fingerprint is None:
                split.fingerprint = data.content_fingerprint(
                    split.dataset, cache_dir, settings["rehash"], settings["cache_dir"] is not None
                )
            key = passes.view_key(view, model, split.fingerprint, settings)
            found = cache.find_entry(cache_dir, key, split.dataset.ids)
            if found is not None:
                out[view] = Stored(found)
                shown.skip()
                continue
        from qa.inference import infer_adversarial  # torch: only for a view to compute

        order = settings["orders"][view.model]
        labels = split.labels if order is None else order[split.labels]
        shown.start(f"{view.model} on {view.split} ({view.name()})", len(labels))
        logits = infer_adversarial(split, model, labels, view, settings, shown.advance)
        shown.finish()
        writer = cache.EntryWriter(settings["folder"], *logits.shape)
        writer.write(np.arange(len(logits)), logits)
        if settings["cache_dir"] is not None and key is not None:
            out[view] = Stored(writer.commit(key, split.dataset.ids))
        else:
            out[view] = Stored(writer.keep())
    return out
