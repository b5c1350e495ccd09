"""The engine (the evidence builder): infer once, check many. An EvidenceRequest in, Evidence out.

Every distinct view is computed once (qa.inference runs the models): logits views by one
streaming, batched pass under torch.inference_mode, where a perturbation (qa.perturb) acts
on the decoded [0, 1] batch before each model's own normalisation; adversarial views by an
attack pass (qa.adversarial) per model; profile views (qa.profile_views) by reading each file
once. Views that differ only by model (the candidate's and the baseline's clean logits of one
split) share the pass: images are decoded once and fed to both.

Every view is cached on disk by content (qa.cache), so a re-run after a threshold edit reads
it back instead of running a model; changing one image, the checkpoint, the view or qa's
version recomputes. The engine knows nothing of suites, checks or reports: the application
(qa.application) turns a suite into a request and the evidence into a verdict.
"""

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from qa import cache, profile_views
from qa.checkpoint import LoadedModel
from qa.data import content_fingerprint, labels_for, load_dataset
from qa.distributed import SINGLE, Group
from qa.errors import InputError
from qa.evidence import Evidence, View, model_facts
from qa.inference import SEED, Perturb, Split, default_workers, infer, infer_adversarial

GEOMETRY = ("resize", "crop", "interpolation")


@dataclass
class EvidenceRequest:
    """What build_evidence needs, and nothing of the suite it came from.

    splits      the data, loaded by load_splits: "eval", and every split a view reads; labels
                index the candidate's classes. A split named in `undecodable_reported` loses
                its undecodable files here, in place, so the caller's ids match the logits
    models      "candidate" (a LoadedModel) and "baseline" (a LoadedModel, or None)
    views       what to compute (qa.runner.plan); a view this engine cannot compute is left out
    device      where the passes run; batch_size  images per batch (adversarial views are
                keyed on it); workers  decoding processes (None: default_workers(device))
    cache_dir   where views are cached by content; None computes everything and caches nothing
    perturb     the hook applying a corruption View to a batch; None leaves such views out
    ladder      the suite's corruption ladder: corruption views are keyed on it
    undecodable_reported  splits read by a check that reports undecodable files (their profile
                says which: qa.profile_views); elsewhere the first one stops the run
    progress    whether to draw a progress bar on stderr
    group       the process group of a sharded run (qa.distributed); SINGLE in one process
    """

    splits: dict[str, Split]
    models: dict[str, LoadedModel | None]
    views: list[View]
    device: torch.device | str = "cpu"
    batch_size: int = 256
    workers: int | None = None
    cache_dir: str | Path | None = cache.DEFAULT_DIR
    perturb: Perturb | None = None
    ladder: str = "auto"
    undecodable_reported: set[str] = field(default_factory=set)
    progress: bool = True
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


def column_order(baseline: LoadedModel, candidate: LoadedModel) -> np.ndarray:
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


def build_evidence(request: EvidenceRequest) -> Evidence:
    """Compute (or read from the cache) every view of the request into one Evidence.

    Profiles first (they decide which undecodable files are left out of inference), then
    logits and adversarial views. A view this engine cannot compute (a perturbation without
    a `perturb` hook, an unknown kind) is left out: the check that asked for it reports an
    error naming it. The baseline's logit columns are put in the candidate's class order
    (column_order). `evidence.model_facts` holds each model's facts (qa.evidence.model_facts),
    `evidence.info["excluded"]` the ids left out per split.
    """
    torch.manual_seed(SEED)
    models = request.models
    candidate, baseline = models["candidate"], models.get("baseline")
    orders = {"candidate": None}
    if baseline is not None:
        orders["baseline"] = column_order(baseline, candidate)
    splits, views, cache_dir = request.splits, request.views, request.cache_dir
    profiles = profile_views.compute_profiles(views, splits, cache_dir)
    excluded = profile_views.drop_undecodable(splits, profiles, request.undecodable_reported)
    device = torch.device(request.device)
    settings = dict(
        device=device,
        batch_size=request.batch_size,
        workers=default_workers(device) if request.workers is None else request.workers,
        perturb=request.perturb,
        orders=orders,
        ladder=request.ladder,
    )
    computable = [v for v in views if _computable(v, models, request.perturb)]
    arrays = _compute(computable, models, splits, settings, cache_dir, request.progress)
    for view, logits in arrays.items():
        if orders[view.model] is not None:
            arrays[view] = logits[:, orders[view.model]]
    evaluation = splits["eval"]
    return Evidence(
        class_names=list(candidate.class_names),
        labels=evaluation.labels,
        sample_ids=list(evaluation.dataset.ids),
        arrays=arrays,
        metadata=dict(evaluation.dataset.metadata),
        split_labels={k: s.labels for k, s in splits.items() if k != "eval"},
        model_facts={"candidate": model_facts(candidate), "baseline": model_facts(baseline)},
        info={"excluded": excluded},
        profiles=profiles,
    )


def _computable(view: View, models: dict, perturb: Perturb | None) -> bool:
    """Whether this engine can compute `view` with the models and hooks it was given."""
    if models.get(view.model) is None:
        return False
    if view.kind == "adversarial":
        return view.perturbation is not None
    return view.kind == "logits" and (view.perturbation is None or perturb is not None)


def _compute(views, models, splits, settings, cache_dir, progress) -> dict[View, np.ndarray]:
    """Cached views from the cache; the rest in one pass per (split, transform) group.

    Logits views of one split and transform share a pass; each adversarial view is a pass
    of its own (its images depend on the model attacked).
    """
    groups: dict[tuple, list[View]] = {}
    for view in views:
        prep = models[view.model].preprocessing
        unit = tuple(prep.get(k, "bilinear") for k in GEOMETRY)
        attacked = view.model if view.kind == "adversarial" else None
        key = (view.kind, attacked, view.split, view.perturbation, view.severity, unit)
        groups.setdefault(key, []).append(view)
    arrays: dict[View, np.ndarray] = {}
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar = Progress(*columns, console=Console(file=sys.stderr), transient=True)
    bar.disable = not progress
    with bar:
        for group in groups.values():
            split = splits[group[0].split]
            keys = _cached(group, models, split, settings, cache_dir, arrays)
            todo = [v for v in group if v not in arrays]
            if not todo:
                continue
            task = bar.add_task(_pass_label(todo), total=len(split.dataset.ids))
            advance = functools.partial(bar.advance, task)
            computed = _run(todo, models, split, settings, advance)
            for view, logits in zip(todo, computed, strict=True):
                arrays[view] = logits
                if cache_dir is not None:
                    _store(cache_dir, keys[view], logits, split.dataset.ids)
    return arrays


def _cached(group, models, split: Split, settings, cache_dir, arrays) -> dict[View, str]:
    """Fill `arrays` with the group's cache hits; the cache key of every view in the group."""
    keys = {}
    if cache_dir is None:
        return keys
    if split.fingerprint is None:
        split.fingerprint = content_fingerprint(split.dataset)
    for view in group:
        keys[view] = view_key(view, models[view.model], split.fingerprint, settings)
        hit = cache.read_entry(cache_dir, keys[view], split.dataset.ids)
        if hit is not None:
            arrays[view] = hit
    return keys


def _run(views: list[View], models, split: Split, settings, advance) -> list[np.ndarray]:
    """One pass computing `views` (a group of _compute): logits, or one adversarial view."""
    if views[0].kind != "adversarial":
        return infer(split, [models[v.model] for v in views], views[0], settings, advance)
    (view,) = views
    order = settings["orders"][view.model]
    labels = split.labels if order is None else order[split.labels]
    return [infer_adversarial(split, models[view.model], labels, view, settings, advance)]


def _pass_label(views: list[View]) -> str:
    """What one pass computes, for its progress bar: "candidate + baseline on eval (clean)"."""
    v = views[0]
    # literal in rich's progress bar: a perturbation registered by a plugin names the view
    return escape(f"{' + '.join(x.model for x in views)} on {v.split} ({v.name()})")


def view_key(view: View, model: LoadedModel, fingerprint: str, settings: dict) -> str:
    """The cache key of one view: what it was computed from and how, never who asked for it.

    The view's kind, perturbation (an attack's every parameter) and severity, and the seed
    of perturbations and attacks are in it; a corruption also keys on the suite's corruption
    ladder, an adversarial view on the batch size, since PGD's random start is drawn per batch.
    """
    parts = {
        "model": model.digest,
        "arch": model.arch,
        "preprocessing": model.preprocessing,
        "temperature": model.temperature,
        "data": fingerprint,
        "view": [view.kind, view.perturbation, view.severity],
        "seed": SEED,
        "device": settings["device"].type,
    }
    if view.kind == "adversarial":
        parts["batch_size"] = settings["batch_size"]
    elif view.perturbation is not None:
        parts["ladder"] = settings.get("ladder", "auto")
    return cache.entry_key(parts)


def _store(cache_dir, key: str, logits: np.ndarray, ids: list[str]) -> None:
    # The cache only saves time: a full disk or read-only folder must not fail the run.
    try:
        cache.write_entry(cache_dir, key, logits, ids)
    except OSError as exc:
        print(f"warning: cannot write the cache entry ({exc}); continuing", file=sys.stderr)
