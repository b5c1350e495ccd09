"""One `qa run`, end to end: load the suite and the models, plan, build the evidence, run the
checks, prepare what reports show, decide, and return the RunReport.

The engine (qa.engine) computes the evidence, the runner (qa.runner) applies the checks and
decides; this module joins them to a suite file and a checkpoint, and prepares what reports
show beyond check results: the overview (confusion matrix), thumbnails of flagged files
(qa.thumbnails), the gallery of images (qa.gallery) and the environment. Printing and exit codes are qa.cli's.
"""

import ast
import functools
import importlib
import importlib.util
import platform
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import qa
from qa import cache, gx, plugins
from qa.distributed import SINGLE, Group
from qa.engine import EvidenceRequest, build_evidence, load_splits
from qa.errors import InputError
from qa.evidence import CLEAN, SEED, Evidence, Split, View
from qa.facts import load_checkpoint
from qa.gallery import build_gallery
from qa.io import atomic_path, check_writable
from qa.metrics.accuracy import confusion_matrix, predictions
from qa.metrics.bootstrap import distributions_kept_in
from qa.perturb import perturb_view
from qa.precision import device_type
from qa.precision import resolve as resolve_precision
from qa.profile_views import decodability_checked
from qa.report import write_reports
from qa.result import RunReport, model_summary, now
from qa.runner import exit_code, plan, run_checks, verdict
from qa.suite import Suite, load_suite
from qa.thumbnails import attach_thumbnails

if TYPE_CHECKING:  # torch is imported only when a view must be computed (qa.facts)
    import torch

    from qa.checkpoint import LoadedModel


@dataclass(frozen=True)
class RunOptions:
    """How to run a suite: the options of `qa run`, with its defaults."""

    baseline: str | Path | None = None  # overrides the suite's `baseline:`
    device: str = "cpu"  # "cpu" or "cuda"
    batch_size: int | None = None  # None: the suite's defaults.batch_size
    workers: int | None = None  # decoding workers; None: qa.inference.default_workers
    out: str | Path | None = "reports"  # the report folder; None writes no reports
    cache_dir: str | Path | None = cache.DEFAULT_DIR  # None: recompute every view
    save_predictions_to: str | Path | None = None  # an .npz of every view's logits
    trust: bool = False  # allow checkpoint formats that run code from the file
    trust_plugins: bool = False  # allow the suite's `plugins:` (imported: they run code)
    strict: bool = False  # a `warn` outcome fails the run
    progress: bool = True  # a progress bar on stderr
    precision: str | None = None  # "fp32", "bf16" or "fp16"; None: the suite's defaults.precision
    # hash every data file and checkpoint again instead of trusting the (path, size, mtime) index
    rehash: bool = False


def run_suite(
    suite_path: str | Path,
    checkpoint: str | Path,
    options: RunOptions = RunOptions(),
    group: Group = SINGLE,
) -> RunReport | None:
    """Everything `qa run` does, as one call: load, plan, infer, check, decide, write reports.

    Returns the finished RunReport (its `exit_code` is what the CLI exits with); the report
    set (qa.report.write_reports) is written under `options.out` unless it is None. Both
    output paths are checked first, so that an unwritable one fails in a moment, not after
    inference.

    In a sharded run (qa.distributed) every rank of `group` calls this: each loads the suite
    and the models (an error on any rank stops every rank with the same error) and computes
    its shard of the evidence; rank 0 checks, decides, writes and returns the RunReport, the
    other ranks return None.
    """
    started, clock = now(), time.perf_counter()
    suite, request = group.together(_prepare, suite_path, checkpoint, options, group)
    evidence = build_evidence(request)
    if group.rank != 0:  # the engine gathered every shard's rows on rank 0 (None here)
        return None
    # GX's outcomes and bootstrap distributions are cached like views, by what they are of
    with gx.outcomes_kept_in(options.cache_dir), distributions_kept_in(options.cache_dir):
        outcomes = run_checks(suite, evidence)
    attach_thumbnails(outcomes, suite, {name: s.dataset for name, s in request.splits.items()})
    decision = verdict(outcomes, options.strict)
    report = RunReport(
        suite_name=suite.name,
        suite_path=str(suite_path),
        verdict=decision,
        exit_code=int(exit_code(decision)),
        strict=options.strict,
        started=started,
        finished=now(),
        duration=time.perf_counter() - clock,
        checkpoint=model_summary(evidence.model_facts["candidate"]),
        baseline=model_summary(evidence.model_facts["baseline"]),
        environment=environment(
            device_type(request.device),
            request.precision,
            group.world,
            plugins.provenance(suite.plugins),
        ),
        outcomes=outcomes,
        overview=overview(evidence),
        gallery=build_gallery(suite, evidence, request, outcomes),
    )
    if options.save_predictions_to is not None:
        save_predictions(options.save_predictions_to, evidence, request.splits)
    if options.out is not None:
        write_reports(report, options.out)
    return report


def _prepare(
    suite_path: str | Path, checkpoint: str | Path, options: RunOptions, group: Group
) -> tuple[Suite, EvidenceRequest]:
    """The suite and the engine's request: output paths checked (on rank 0, which alone
    writes), suite and models loaded, views planned, splits scanned."""
    if group.rank == 0 and options.out is not None:
        check_writable(options.out, "--out", folder=True)
    if group.rank == 0 and options.save_predictions_to is not None:
        check_writable(options.save_predictions_to, "--save-predictions")
    suite = load_suite(
        suite_path,
        baseline=options.baseline,
        trust_plugins=options.trust_plugins,
        cache_dir=options.cache_dir,
    )
    device = _device(options.device, group)
    run_precision(suite, options, device)  # an fp16 run on the CPU fails before any loading
    candidate = _load(checkpoint, suite, options, group)
    baseline = _load_baseline(suite, options, group) if suite.baseline else None
    models = {"candidate": candidate, "baseline": baseline}
    return suite, evidence_request(suite, models, plan(suite), device, options, group)


def _device(name: str, group: Group) -> "torch.device | str":
    """The run's device: "cpu" by name, so that a run whose views are all cached never imports
    torch; CUDA through qa.inference.resolve_device (one line when absent), this rank's GPU in
    a sharded run."""
    if name == "cpu":
        return "cpu"
    from qa.inference import resolve_device  # torch: a CUDA run asks torch for its device

    device = resolve_device(name)
    if device.type == device_type(group.device):  # a sharded run on CUDA: this rank's GPU
        device = group.device
    return device


def _load(path: str | Path, suite: Suite, options: RunOptions, group: Group) -> "LoadedModel":
    """A checkpoint: its facts from the cache when they are there (qa.facts: the model itself
    loads only if a view is missing), else loaded now (qa.formats)."""
    return load_checkpoint(
        path,
        suite.model,
        options.trust,
        options.cache_dir,
        functools.partial(_load_bytes, model_spec=suite.model, trust=options.trust),
        writable=group.rank == 0,
        rehash=options.rehash,
    )


def _load_bytes(blob, model_spec, trust: bool) -> "LoadedModel":
    from qa.formats import load_bytes  # torch: loading a model

    return load_bytes(blob, model_spec, trust)


def evidence_request(
    suite: Suite,
    models: "dict[str, LoadedModel | None]",
    views: list[View],
    device: "torch.device | str",
    options: RunOptions = RunOptions(),
    group: Group = SINGLE,
) -> EvidenceRequest:
    """What the engine needs to compute `views` of the suite's data with `models`: the splits
    the views read, loaded and labelled in the candidate's classes, and the suite's defaults
    (batch size, corruption ladder, precision: `options` override the first and last) and
    checks (which report undecodable files) it uses. `group` is the sharded run's process
    group (qa.distributed), SINGLE in one process."""
    ladder = suite.defaults.corruption_ladder
    return EvidenceRequest(
        splits=load_splits(suite.data.splits(), views, models["candidate"].class_names),
        models=models,
        views=views,
        device=device,
        batch_size=options.batch_size or suite.defaults.batch_size,
        workers=options.workers,
        cache_dir=options.cache_dir,
        perturb=functools.partial(perturb_view, seed=SEED, ladder=ladder),
        ladder=ladder,
        undecodable_reported=decodability_checked(suite),
        progress=options.progress,
        precision=run_precision(suite, options, device),
        rehash=options.rehash,
        group=group,
    )


def run_precision(suite: Suite, options: RunOptions, device: "torch.device | str") -> str:
    """The run's precision: `--precision`, else the suite's `defaults.precision`; InputError
    (one line) when the device cannot run it (qa.precision.resolve: fp16 needs CUDA)."""
    return resolve_precision(options.precision or suite.defaults.precision, device)


def _load_baseline(suite: Suite, options: RunOptions, group: Group) -> "LoadedModel":
    """The suite's baseline; InputError prefixed with "baseline" when it is missing or bad."""
    try:
        return _load(suite.baseline, suite, options, group)
    except InputError as exc:
        raise type(exc)(f"baseline {exc}") from None


def environment(
    device: str, precision: str, world_size: int = 1, plugin_modules: Sequence[dict] = ()
) -> dict:
    """The software and machine a run used, the forward pass's precision, the number of
    processes of a sharded run (qa.distributed, 1 in one process) and the suite's plugin
    modules with their code's digests (qa.plugins.provenance): so a result can be reproduced."""
    return {
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "torchvision": package_version("torchvision"),
        "qa": qa.__version__,
        "platform": platform.platform(),
        "device": device,
        "precision": precision,
        "world_size": world_size,
        "plugins": list(plugin_modules),
    }


def package_version(name: str) -> str:
    """A package's `__version__` ("2.4.1+cu121"), read from its `version.py` without importing
    it when it is not imported yet (a run served by the cache never imports torch)."""
    module = sys.modules.get(name)
    if module is not None:
        return str(module.__version__)
    spec = importlib.util.find_spec(name)
    folder = spec.submodule_search_locations if spec else None
    if folder:
        source = Path(next(iter(folder)), "version.py")
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "__version__" for t in node.targets
            ):
                return str(ast.literal_eval(node.value))
    return str(importlib.import_module(name).__version__)


def overview(evidence: Evidence) -> dict:
    """The run report's overview: class names, sample count and the candidate's clean eval
    confusion matrix (rows true, columns predicted), when clean logits were computed."""
    result: dict = {"class_names": list(evidence.class_names), "n": len(evidence.labels)}
    if CLEAN in evidence.arrays:
        pred = predictions(evidence.logits(CLEAN))
        matrix = confusion_matrix(evidence.labels, pred, len(evidence.class_names))
        result["confusion_matrix"] = matrix.tolist()
    return result


def save_predictions(path: str | Path, evidence: Evidence, splits: dict[str, Split]) -> None:
    """Write every view's per-sample logits with the ids and labels they belong to (npz).

    Keys: `<split>/ids`, `<split>/labels` (indices into `class_names`), `class_names`, and
    `<model>/<split>/<clean | perturbation-sN | attack>/logits` for each view computed. The
    views are written one at a time (as np.savez writes its members), so memory holds one.
    """

    def members():
        yield "class_names", np.array(evidence.class_names, dtype=str)
        for name, split in splits.items():
            yield f"{name}/ids", np.array(split.dataset.ids, dtype=str)
            yield f"{name}/labels", split.labels
        for view in evidence.arrays:
            yield f"{view.model}/{view.split}/{view.name('-')}/logits", evidence.arrays[view]

    try:
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for name, array in members():  # a kill leaves no partial file
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    except OSError as exc:
        raise InputError(
            f"--save-predictions {path}: cannot write the predictions ({exc})"
        ) from None
