"""The engine: infer once, check many. Planned views in, Evidence out.

Every distinct view is computed once (qa.inference runs the models): logits views by one
streaming, batched pass under torch.inference_mode, where a perturbation (qa.perturb) acts
on the decoded [0, 1] batch before each model's own normalisation; adversarial views by an
attack pass (qa.adversarial) per model; profile views (qa.views) by reading each file once.
Views that differ only by model (the candidate's and the baseline's clean logits of one
split) share the pass: images are decoded once and fed to both.

Every view is cached on disk by content (qa.cache), so a re-run after a threshold edit reads
it back instead of running a model; changing one image, the checkpoint, the view or qa's
version recomputes. After the checks, run_suite prepares what reports show beyond check
results: the overview (confusion matrix) and thumbnails of flagged files (qa.thumbnails).
"""

import functools
import os
import sys
from pathlib import Path

import numpy as np
import torch

from qa import cache
from qa.checkpoint import LoadedModel
from qa.data import content_fingerprint, labels_for, load_dataset
from qa.errors import InputError
from qa.evidence import CLEAN, Evidence, View
from qa.inference import SEED, Perturb, Split, infer, infer_adversarial
from qa.io import atomic_path, check_writable

__all__ = ["SEED", "Perturb", "Split", "build_evidence", "infer", "run_suite"]
GEOMETRY = ("resize", "crop", "interpolation")


def resolve_device(name: str) -> torch.device:
    """The torch device for `--device`; InputError when CUDA is asked for but absent."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda: CUDA is not available on this machine "
            f"(torch {torch.__version__}, cuda build {torch.version.cuda or 'none'}); use --device cpu"
        )
    if name not in ("cpu", "cuda"):
        raise InputError(f"--device: expected cpu or cuda, found {name!r}")
    return torch.device(name)


def default_workers(device: torch.device) -> int:
    """DataLoader workers: none on CPU, where the forward pass already uses every core; a few
    on CUDA, where decoding in parallel keeps the GPU fed."""
    return 0 if device.type == "cpu" else min(4, max(1, (os.cpu_count() or 2) - 1))


def load_splits(suite, views: list[View], class_names: list[str]) -> dict[str, Split]:
    """Scan every split the views read (eval always) and match its classes to the model's."""
    specs = suite.data.splits()
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


def build_evidence(
    suite,
    candidate: LoadedModel,
    baseline: LoadedModel | None,
    views: list[View],
    device: torch.device | str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | Path | None = cache.DEFAULT_DIR,
    progress: bool = True,
    workers: int | None = None,
    perturb: Perturb | None = None,
    splits: dict[str, Split] | None = None,
) -> Evidence:
    """Compute (or read from the cache) every planned view into one Evidence.

    Profiles first (they decide which undecodable files qa.views leaves out of inference),
    then logits and adversarial views. A view this engine cannot compute (a perturbation
    without a `perturb` function, an unknown kind) is left out: the check that asked for it
    reports an error naming it. `evidence.info["excluded"]` lists the ids left out per split.
    """
    from qa import views as profile_views

    device = torch.device(device)
    torch.manual_seed(SEED)
    models = {"candidate": candidate, "baseline": baseline}
    names = candidate.class_names
    orders = {"candidate": None}
    if baseline is not None:
        orders["baseline"] = column_order(baseline, candidate)
    splits = splits if splits is not None else load_splits(suite, views, names)
    profiles = profile_views.compute_profiles(views, splits, cache_dir)
    checked = profile_views.decodability_checked(suite)
    excluded = profile_views.drop_undecodable(splits, profiles, checked)
    settings = dict(
        device=device,
        batch_size=batch_size or suite.defaults.batch_size,
        workers=default_workers(device) if workers is None else workers,
        perturb=perturb,
        orders=orders,
        ladder=suite.defaults.corruption_ladder,
    )
    computable = [v for v in views if _computable(v, models, perturb)]
    arrays = _compute(computable, models, splits, settings, cache_dir, progress)
    for view, logits in arrays.items():
        if orders[view.model] is not None:
            arrays[view] = logits[:, orders[view.model]]
    evaluation = splits["eval"]
    return Evidence(
        class_names=list(names),
        labels=evaluation.labels,
        sample_ids=list(evaluation.dataset.ids),
        arrays=arrays,
        metadata=dict(evaluation.dataset.metadata),
        split_labels={k: s.labels for k, s in splits.items() if k != "eval"},
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
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

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
    what = "clean" if v.perturbation is None else f"{v.perturbation} s{v.severity}"
    if v.kind == "adversarial":
        what = v.perturbation
    from rich.markup import escape

    # literal in rich's progress bar: a perturbation registered by a plugin names the view
    return escape(f"{' + '.join(x.model for x in views)} on {v.split} ({what})")


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


def save_predictions(path: str | Path, evidence: Evidence, splits: dict[str, Split]) -> None:
    """Write every view's per-sample logits with the ids and labels they belong to (npz).

    Keys: `<split>/ids`, `<split>/labels` (indices into `class_names`), `class_names`, and
    `<model>/<split>/<clean | perturbation-sN | attack>/logits` for each view computed.
    """
    payload = {"class_names": np.array(evidence.class_names, dtype=str)}
    for name, split in splits.items():
        payload[f"{name}/ids"] = np.array(split.dataset.ids, dtype=str)
        payload[f"{name}/labels"] = split.labels
    for view, logits in evidence.arrays.items():
        what = "clean" if view.perturbation is None else f"{view.perturbation}-s{view.severity}"
        if view.kind == "adversarial":
            what = view.perturbation
        payload[f"{view.model}/{view.split}/{what}/logits"] = logits
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a kill leaves no partial file
            np.savez(f, **payload)
    except OSError as exc:
        raise InputError(
            f"--save-predictions {path}: cannot write the predictions ({exc})"
        ) from None


def run_suite(
    suite_path: str | Path,
    checkpoint: str | Path,
    *,
    baseline: str | Path | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    workers: int | None = None,
    out: str | Path | None = "reports",
    cache_dir: str | Path | None = cache.DEFAULT_DIR,
    save_predictions_to: str | Path | None = None,
    trust: bool = False,
    strict: bool = False,
    progress: bool = True,
):
    """Everything `qa run` does, as one call: load, plan, infer, check, decide, write reports.

    Returns the finished RunReport (its `exit_code` is what the CLI exits with); the report
    set (qa.report.write_reports) is written under `out` unless it is None. Both output paths
    are checked first, so that an unwritable one fails in a moment, not after inference.
    """
    import time

    from qa.formats import load_any
    from qa.perturb import perturb_view
    from qa.report import RunReport, environment, model_summary, now, write_reports
    from qa.runner import exit_code, plan, run_checks, verdict
    from qa.suite import load_suite
    from qa.thumbnails import attach_thumbnails

    if out is not None:
        check_writable(out, "--out", folder=True)
    if save_predictions_to is not None:
        check_writable(save_predictions_to, "--save-predictions")
    started, clock = now(), time.perf_counter()
    suite = load_suite(suite_path, baseline=baseline)
    dev = resolve_device(device)
    candidate = load_any(checkpoint, suite.model, trust)
    base = _load_baseline(suite, trust) if suite.baseline else None
    views = plan(suite)
    splits = load_splits(suite, views, candidate.class_names)
    hook = functools.partial(perturb_view, seed=SEED, ladder=suite.defaults.corruption_ladder)
    evidence = build_evidence(
        suite, candidate, base, views, dev, batch_size, cache_dir, progress, workers, hook, splits
    )
    evidence.info.update(candidate=model_info(candidate), baseline=model_info(base))
    outcomes = run_checks(suite, evidence)
    attach_thumbnails(outcomes, suite, {name: s.dataset.root for name, s in splits.items()})
    decision = verdict(outcomes, strict)
    report = RunReport(
        suite_name=suite.name,
        suite_path=str(suite_path),
        verdict=decision,
        exit_code=int(exit_code(decision)),
        strict=strict,
        started=started,
        finished=now(),
        duration=time.perf_counter() - clock,
        checkpoint=model_summary(candidate),
        baseline=model_summary(base),
        environment=environment(dev.type),
        outcomes=outcomes,
        overview=overview(evidence),
    )
    if save_predictions_to is not None:
        save_predictions(save_predictions_to, evidence, splits)
    if out is not None:
        write_reports(report, out)
    return report


def _load_baseline(suite, trust: bool) -> LoadedModel:
    """The suite's baseline; InputError prefixed with "baseline" when it is missing or bad."""
    from qa.formats import load_any

    try:
        return load_any(suite.baseline, suite.model, trust)
    except InputError as exc:
        raise type(exc)(f"baseline {exc}") from None


def model_info(model: LoadedModel | None) -> dict | None:
    """What checks may know about a model (evidence.info): the report's summary, with the full
    provenance (the data fingerprint's hashes too, which reports only summarise)."""
    from qa.report import model_summary

    if model is None:
        return None
    return {**model_summary(model), "provenance": dict(model.provenance)}


def overview(evidence: Evidence) -> dict:
    """The run report's overview: class names, sample count and the candidate's clean eval
    confusion matrix (rows true, columns predicted), when clean logits were computed."""
    from qa.metrics.accuracy import confusion_matrix, predictions

    result: dict = {"class_names": list(evidence.class_names), "n": len(evidence.labels)}
    if CLEAN in evidence.arrays:
        pred = predictions(evidence.logits(CLEAN))
        matrix = confusion_matrix(evidence.labels, pred, len(evidence.class_names))
        result["confusion_matrix"] = matrix.tolist()
    return result
