"""`trainer finetune`: set a run up (fresh or resumed), then train epoch by epoch.

Each epoch trains, validates, writes last.pt (and best.pt when the chosen metric improved)
atomically and appends a line to metrics.jsonl, so a Ctrl-C or a crash loses at most the
epoch in flight, and `--resume RUNDIR/last.pt` replays the rest bit for bit on CPU.
A run whose loss or weights stop being finite is stopped as bad input (exit 2, usually a too
high --lr) before anything of it is saved, so best.pt and last.pt keep their last good epoch.
"""

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from qa.architectures import build_model
from qa.errors import InputError, first_line
from qa.preprocess import make_preprocessing, normalize, to_unit_tensor
from trainer import checkpoint, data, distributed, gate, init
from trainer.config import TrainConfig, as_record, config_from_flags, improves
from trainer.distributed import World
from trainer.loop import evaluate, memory_format, train_epoch, warmup_cosine
from trainer.progress import EpochProgress

# Steps between two divergence checks where a check costs a device sync (GPU, torchrun).
CHECK_EVERY = 10


@dataclass
class Run:
    """Everything one run carries from epoch to epoch."""

    cfg: TrainConfig
    world: World
    device: torch.device
    module: nn.Module  # the bare model, whose weights are saved
    model: nn.Module  # what trains: the module, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    criterion: nn.Module
    loaders: tuple
    normalize: Callable[[torch.Tensor], torch.Tensor]
    class_names: list[str]
    preprocessing: dict
    provenance: dict
    epoch: int = 0  # epochs completed
    best: dict = field(default_factory=dict)  # {"epoch", "metric", "value"} of the best epoch
    bad_epochs: int = 0
    gate: dict = field(default_factory=gate.new_state)  # --gate's record (trainer.gate)


def finetune(flags: dict) -> dict:
    """Train from the given command-line flags; returns the final epoch's metrics.

    Under torchrun every process calls this; only rank 0 writes files and prints.
    """
    resumed = None
    if flags.get("resume"):
        resumed = checkpoint.read_resumable(flags["resume"])
        # The run goes on beside the file resumed from, wherever the run folder was moved.
        flags = {"out": str(Path(flags["resume"]).parent), **flags}
    cfg = config_from_flags(flags, resumed["provenance"]["config"] if resumed else None)
    checkpoint.check_rundir(cfg.out)
    if cfg.gate:
        gate.check(cfg)
    world, device = distributed.start(cfg.device)
    try:
        removed = checkpoint.remove_stale_temporaries(cfg.out) if world.is_main else None
        if removed:
            print(removed, flush=True)
        run = prepare(cfg, world, device, resumed)
        return fit(run)
    finally:
        distributed.stop()


def prepare(cfg: TrainConfig, world: World, device: torch.device, resumed: dict | None) -> Run:
    """Validate the data, build the model, optimiser and loaders, and restore a resumed state."""
    torch.manual_seed(cfg.seed + world.rank)
    random.seed(cfg.seed + world.rank)
    splits = data.load_splits(cfg.data)
    module = build_model(cfg.arch, {"num_classes": len(splits.class_names)})
    if resumed is not None:
        check_resumable(cfg, resumed, splits.class_names)
        module.load_state_dict(resumed["state_dict"])
        preprocessing = resumed["preprocessing"]
        origin = resumed["provenance"].get("init", {"kind": "unknown"})
    else:
        preprocessing, origin = initialise(cfg, module, splits)
    if cfg.freeze_backbone:
        init.freeze_backbone(module)
    module.to(device, memory_format=memory_format(device))
    model = module
    if world.size > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(module, device_ids=ids)
    pretrained = origin["kind"] != "scratch"
    backbone_lr = cfg.backbone_lr or (cfg.lr * 0.1 if pretrained else cfg.lr)
    optimizer = init.make_optimizer(module, cfg.lr, backbone_lr, cfg.weight_decay)
    train_set = data.ImageDataset(
        splits.train, data.train_transform(preprocessing, cfg.augmentations)
    )
    val_set = data.ImageDataset(splits.val, to_unit_tensor(preprocessing))
    loaders = (
        data.train_loader(train_set, cfg.batch_size, cfg.workers, cfg.seed, world),
        data.eval_loader(val_set, cfg.batch_size * 2, cfg.workers, world),
    )
    steps = len(loaders[0])
    schedule = warmup_cosine(cfg.epochs * steps, round(cfg.warmup_epochs * steps))
    run = Run(
        cfg=cfg,
        world=world,
        device=device,
        module=module,
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, schedule),
        criterion=nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing),
        loaders=loaders,
        normalize=normalize(preprocessing),
        class_names=splits.class_names,
        preprocessing=preprocessing,
        provenance={
            "config": as_record(cfg),
            "versions": checkpoint.versions(),
            "git_commit": checkpoint.git_commit(),
            "data_fingerprint": splits.fingerprint,
            "init": origin,
        },
    )
    if resumed is not None:
        try:
            restore(run, resumed["train_state"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InputError(
                f"--resume {cfg.resume}: its training state does not fit this run "
                f"({first_line(exc)})"
            ) from None
    return run


def initialise(cfg: TrainConfig, module: nn.Module, splits: data.Splits) -> tuple[dict, dict]:
    """Load --weights or --init into a fresh model; returns its preprocessing and origin."""
    size = cfg.image_size or splits.first_image_size
    if cfg.weights:
        state, preprocessing, origin = init.pretrained(cfg.weights, cfg.arch)
        origin["fresh_head"] = init.load_backbone(module, state, f"--weights {origin['name']}")
        if cfg.image_size is not None:
            preprocessing = {**preprocessing, "resize": size, "crop": size}
        return preprocessing, origin
    mean, std = data.channel_stats(splits.train, size)
    if cfg.init:
        state, origin = init.load_init(cfg.init)
        origin["fresh_head"] = init.load_backbone(module, state, f"--init {cfg.init}")
    else:
        origin = {"kind": "scratch"}
    return make_preprocessing(size, mean=mean, std=std), origin


def check_resumable(cfg: TrainConfig, resumed: dict, class_names: list[str]) -> None:
    """A resumed run must keep its architecture and classes: its weights and head fit no other."""
    if resumed["arch"] != cfg.arch:
        raise InputError(
            f"--resume {cfg.resume}: the checkpoint is a {resumed['arch']}, not a {cfg.arch}"
        )
    if list(resumed["class_names"]) != class_names:
        raise InputError(
            f"--resume {cfg.resume}: the checkpoint's classes {list(resumed['class_names'])} "
            f"differ from {cfg.data}'s {class_names}"
        )


def restore(run: Run, state: dict) -> None:
    """Continue from a saved train_state: optimiser, schedule, RNG, epoch and early-stop state.

    The optimiser's settings (learning rates, weight decay) stay those of this run's config,
    so --lr or --weight-decay given again with --resume apply from the resumed step on; when
    none is given they equal the saved ones and the run replays exactly.
    """
    settings = [
        {k: v for k, v in group.items() if k not in ("params", "lr")}
        for group in run.optimizer.param_groups
    ]
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scheduler.base_lrs = [group["initial_lr"] for group in settings]
    for group, own, factor in zip(
        run.optimizer.param_groups, settings, run.scheduler.lr_lambdas, strict=True
    ):
        group.update(own)
        group["lr"] = own["initial_lr"] * factor(run.scheduler.last_epoch)
    checkpoint.restore_rng(state["rng"])
    run.epoch = int(state["epoch"])
    run.best = dict(state["best"])
    run.bad_epochs = int(state["bad_epochs"])
    run.gate = dict(state.get("gate") or gate.new_state())


def fit(run: Run) -> dict:
    """The epoch loop, with early stopping; a Ctrl-C says which checkpoint holds what."""
    cfg, world = run.cfg, run.world
    rundir = Path(cfg.out)
    if world.is_main:
        checkpoint.start_metrics_log(rundir / "metrics.jsonl", run.epoch)
        removed = gate.forget_unproven_best(rundir, run.gate) if cfg.gate else None
        if removed:
            print(removed, flush=True)
    record: dict = {}
    for epoch in range(run.epoch + 1, cfg.epochs + 1):
        try:
            record = run_epoch(run, epoch)
        except KeyboardInterrupt:
            held = f"{rundir / 'last.pt'} holds epoch {run.epoch}" if run.epoch else "nothing saved"
            raise KeyboardInterrupt(f"during epoch {epoch}; {held}") from None
        if stop_reason(run, record):
            if world.is_main:
                print(f"stopping after epoch {epoch}: {stop_reason(run, record)}", flush=True)
            break
    if cfg.gate and world.is_main and not run.gate["best"]:
        raise gate.GateFailed(gate.never_passed(cfg, run.gate))
    return record


def run_epoch(run: Run, epoch: int) -> dict:
    """Train and validate one epoch, then checkpoint and log it (rank 0)."""
    cfg, world = run.cfg, run.world
    train_loader, val_loader = run.loaders
    data.reseed(train_loader, cfg.seed, epoch, world)
    run.model.train()
    init.hold_frozen_norms(run.module)
    started = time.perf_counter()
    progress = EpochProgress(epoch, cfg.epochs, len(train_loader), enabled=world.is_main)
    steps = len(train_loader)
    # A per-step check is free on CPU; on a GPU, or across processes, it costs a sync.
    every = 1 if run.device.type == "cpu" and world.size == 1 else CHECK_EVERY

    def on_step(step: int, totals: torch.Tensor) -> None:
        progress.update(step, totals)
        if (step + 1) % every == 0 or step + 1 == steps:
            check_loss(run, epoch, f"step {step + 1}/{steps}", totals[:1])

    with progress:
        train = train_epoch(
            run.model,
            train_loader,
            run.optimizer,
            run.scheduler,
            run.criterion,
            run.device,
            run.normalize,
            cfg.grad_clip,
            on_step,
        )
    seconds = time.perf_counter() - started
    train = distributed.sum_across(train, world).tolist()
    distributed.broadcast_buffers(run.module, world)
    val = distributed.sum_across(
        evaluate(run.module, val_loader, run.device, run.normalize), world
    ).tolist()
    record = {
        "epoch": epoch,
        "train_loss": train[0] / train[2],
        "train_acc": train[1] / train[2],
        "val_loss": val[0] / val[2],
        "val_acc": val[1] / val[2],
        "lr": run.optimizer.param_groups[-1]["lr"],
        "images_per_s": train[2] / seconds,
        "seconds": seconds,
    }
    if not math.isfinite(record["val_loss"]):  # summed already: every process sees the same
        raise InputError(diverged(run, epoch, f"validation: the loss became {record['val_loss']}"))
    check_weights(run, epoch)
    improved = update_best(run, record)
    if cfg.gate:  # best.pt is the best epoch that passes the suite, not the best by --metric
        gated = gate.due(cfg, epoch, stop_reason(run, record) is not None)
        improved = gated and gate.judge(run, record, make_checkpoint(run, record))
    if world.is_main:
        checkpoint.save_run(cfg.out, make_checkpoint(run, record), best=improved and not cfg.gate)
        checkpoint.append_metrics(Path(cfg.out) / "metrics.jsonl", record)
        print(summary_line(record, cfg.epochs, improved), flush=True)
        if "gate" in record:
            print(gate.epoch_line(record), flush=True)
    run.epoch = epoch
    return record


def check_loss(run: Run, epoch: int, where: str, loss_sum: torch.Tensor) -> None:
    """Stop the run, on every process alike, once a loss sum is NaN or infinite."""
    loss_sum = distributed.sum_across(loss_sum.detach().clone(), run.world)
    if not torch.isfinite(loss_sum).all():
        raise InputError(diverged(run, epoch, f"{where}: the loss became {loss_sum[0].item()}"))


def check_weights(run: Run, epoch: int) -> None:
    """Stop the run if a weight or buffer went non-finite while the losses seen stayed finite."""
    for name, tensor in run.module.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise InputError(diverged(run, epoch, f"{name} became non-finite"))


def diverged(run: Run, epoch: int, what: str) -> str:
    """The one line saying training diverged, where, what to try, and what the files hold."""
    rundir = Path(run.cfg.out)
    if run.epoch:
        kept = f"{rundir / 'last.pt'} keeps epoch {run.epoch}"
        best = run.gate["best"] if run.cfg.gate else run.best
        if best:
            kept += f", best.pt epoch {best['epoch']}"
    else:
        kept = "nothing was saved"
    return (
        f"training diverged in epoch {epoch}, {what}; lower --lr (now {run.cfg.lr:g}) "
        f"or set --grad-clip; {kept}"
    )


def update_best(run: Run, record: dict) -> bool:
    """Track the best value of --metric; returns whether this epoch improved on it."""
    value = record[run.cfg.metric]
    improved = improves(run.cfg.metric, value, run.best.get("value"))
    if improved:
        run.best = {"epoch": record["epoch"], "metric": run.cfg.metric, "value": value}
        run.bad_epochs = 0
    else:
        run.bad_epochs += 1
    return improved


def stop_reason(run: Run, record: dict) -> str | None:
    """Why training should stop early, or None to go on."""
    cfg = run.cfg
    if cfg.target_accuracy is not None and record["val_acc"] >= cfg.target_accuracy:
        return f"val_acc {record['val_acc']:.4f} reached --target-accuracy {cfg.target_accuracy}"
    if cfg.stop_when_passing and record["epoch"] in run.gate["passed"]:
        return f"it passed --gate {cfg.gate} (--stop-when-passing)"
    if cfg.patience and run.bad_epochs >= cfg.patience:
        return f"{cfg.metric} did not improve for {cfg.patience} epochs (--patience)"
    return None


def make_checkpoint(run: Run, record: dict) -> dict:
    """The qa checkpoint of the current state, with provenance and the train_state to resume."""
    return {
        "arch": run.cfg.arch,
        "arch_kwargs": {"num_classes": len(run.class_names)},
        "class_names": list(run.class_names),
        "preprocessing": run.preprocessing,
        "state_dict": run.module.state_dict(),
        "provenance": {
            **run.provenance,
            "metrics": {"final": record, "best": dict(run.best)},
            "created": checkpoint.created(),
        },
        "train_state": {
            "epoch": record["epoch"],
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "rng": checkpoint.rng_state(),
            "best": dict(run.best),
            "bad_epochs": run.bad_epochs,
            "gate": run.gate,
        },
    }


def summary_line(record: dict, epochs: int, improved: bool) -> str:
    """One line per epoch, printed whether or not a progress bar is shown."""
    return (
        f"epoch {record['epoch']}/{epochs}  "
        f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.4f}  "
        f"val loss {record['val_loss']:.4f} acc {record['val_acc']:.4f}  "
        f"{record['images_per_s']:.0f} img/s  {record['seconds']:.1f}s"
        + ("  *best" if improved else "")
    )
