"""Every setting of `trainer finetune`, with its default and help, in one place.

The command line is generated from `TrainConfig`'s fields, and a checkpoint records the whole
config, so `--resume` can rebuild a run from the file and apply only the flags given again.
"""

import math
import operator
import types
from dataclasses import asdict, dataclass, field, fields

from qa.errors import InputError

AUGMENTATIONS = ("crop", "flip")
METRICS = ("val_acc", "val_loss")
DEVICES = ("auto", "cpu", "cuda")
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _opt(default, help: str, **extra):
    # `bounds`: ((operator, limit), ...) that a numeric setting must satisfy (see check_number).
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """The settings of one fine-tuning run (see `trainer finetune --help`)."""

    data: str | None = _opt(None, "folder with train/ and val/ ImageFolder trees")
    out: str | None = _opt(None, "run folder: best.pt, last.pt, metrics.jsonl")
    arch: str = _opt("resnet18", "torchvision architecture name, or timm/NAME for a timm model")
    weights: str | None = _opt(
        None,
        "pretrained weights from the local cache: torchvision's (ResNet18_Weights.IMAGENET1K_V1)"
        ", a timm tag (a1_in1k) for timm/NAME, or DEFAULT",
    )
    init: str | None = _opt(None, "start from a qa checkpoint or a plain state_dict")
    freeze_backbone: bool = _opt(False, "train only the classification head")
    lr: float = _opt(3e-3, "peak learning rate of the head (AdamW)", bounds=((">", 0),))
    backbone_lr: float | None = _opt(
        None,
        "peak learning rate of the backbone (default: lr*0.1 when pretrained, else lr)",
        bounds=((">", 0),),
    )
    weight_decay: float = _opt(
        0.01, "AdamW weight decay (not applied to norms and biases)", bounds=((">=", 0),)
    )
    epochs: int = _opt(6, "number of epochs", bounds=((">=", 1),))
    batch_size: int = _opt(32, "images per step (per process under torchrun)", bounds=((">=", 1),))
    warmup_epochs: float = _opt(
        0.5, "linear warm-up before the cosine decay, in epochs", bounds=((">=", 0),)
    )
    label_smoothing: float = _opt(
        0.0, "label smoothing of the training loss", bounds=((">=", 0), ("<", 1))
    )
    grad_clip: float = _opt(
        0.0, "clip the gradient norm to this value (0: off)", bounds=((">=", 0),)
    )
    augment: str = _opt("crop,flip", "comma list of crop,flip, or none")
    image_size: int | None = _opt(
        None,
        "input size (default: the weights' crop size, else the first training image's)",
        bounds=((">=", 1),),
    )
    patience: int = _opt(
        0, "stop after this many epochs without improvement (0: off)", bounds=((">=", 0),)
    )
    metric: str = _opt(
        "val_acc", "metric that picks best.pt and drives --patience", choices=METRICS
    )
    target_accuracy: float | None = _opt(
        None, "stop once validation accuracy reaches this", bounds=((">=", 0), ("<=", 1))
    )
    seed: int = _opt(
        0,
        "seed of every random choice: a CPU run is bit-for-bit reproducible",
        bounds=((">=", 0), ("<", 2**63)),
    )
    resume: str | None = _opt(None, "continue a run from its last.pt (flags given again override)")
    gate: str | None = _opt(
        None, "a qa suite run on each gated epoch; best.pt is then the best epoch that passes it"
    )
    gate_every: int = _opt(
        1, "with --gate: run the suite every N epochs, and on the last", bounds=((">=", 1),)
    )
    gate_cache: str | None = _opt(None, "with --gate: qa's view cache (default: OUT/.qa-cache)")
    stop_when_passing: bool = _opt(False, "with --gate: stop after the first epoch that passes")
    trust_plugins: bool = _opt(
        False, "with --gate: let the suite's plugins: import their modules (they run code)"
    )
    device: str = _opt("auto", "auto, cpu or cuda", choices=DEVICES)
    workers: int = _opt(
        2, "data-loading worker processes per training process", bounds=((">=", 0),)
    )

    @property
    def augmentations(self) -> set[str]:
        """The augmentations named by `augment`, as a set (empty for "none")."""
        return set() if self.augment == "none" else set(self.augment.split(","))


def flag_type(f) -> type:
    """The Python type a field's flag parses to (the non-None member of `X | None`)."""
    if isinstance(f.type, types.UnionType):
        return next(t for t in f.type.__args__ if t is not type(None))
    return f.type


def config_from_flags(flags: dict, saved: dict | None = None) -> TrainConfig:
    """Build and validate a TrainConfig: defaults, then a resumed run's config, then `flags`.

    `flags` holds only the options given on the command line, so a resumed run keeps its
    recorded settings except those the user overrides.
    """
    names = {f.name for f in fields(TrainConfig)}
    base = {}
    if saved is not None:
        unknown = sorted(set(saved) - names)
        if unknown:
            raise InputError(f"--resume: the checkpoint's config has unknown keys {unknown}")
        base = saved
    cfg = TrainConfig(**{**base, **flags})
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Reject settings that cannot train, with one line naming the flag."""
    if cfg.data is None or cfg.out is None:
        raise InputError("finetune: --data and --out are required (unless --resume is given)")
    if cfg.weights and cfg.init:
        raise InputError("finetune: give either --weights or --init, not both")
    if cfg.stop_when_passing and not cfg.gate:
        raise InputError("finetune: --stop-when-passing needs --gate SUITE")
    for f in fields(cfg):
        if flag_type(f) in (int, float):
            check_number(f, getattr(cfg, f.name))
    for name, value, allowed in (("metric", cfg.metric, METRICS), ("device", cfg.device, DEVICES)):
        if value not in allowed:
            raise InputError(f"--{name}: expected one of {', '.join(allowed)}, found {value!r}")
    unknown = cfg.augmentations - set(AUGMENTATIONS)
    if unknown or not cfg.augment:
        raise InputError(
            f"--augment: expected a comma list of {', '.join(AUGMENTATIONS)} or none, "
            f"found {cfg.augment!r}"
        )


def check_number(f, value) -> None:
    """Refuse a numeric setting that is not a finite number within its field's `bounds`.

    One rule for every number, whether it came from the command line (where argparse's
    `float` happily reads nan and inf) or from a resumed checkpoint's recorded config.
    """
    if value is None and f.default is None:
        return
    bounds = f.metadata.get("bounds", ())
    whole = flag_type(f) is int
    kind = "a whole number" if whole else "a finite number"
    expected = " ".join([kind, " and ".join(f"{op} {limit}" for op, limit in bounds)]).strip()
    number = isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and all(_OPS[op](value, lim) for op, lim in bounds)):
        raise InputError(f"--{f.name.replace('_', '-')}: expected {expected}, found {value!r}")


def improves(metric: str, value: float, best: float | None) -> bool:
    """Whether `value` of `metric` beats `best` (None: nothing yet): val_loss lower, else higher."""
    if best is None:
        return True
    return value < best if metric == "val_loss" else value > best


def as_record(cfg: TrainConfig) -> dict:
    """The config as plain data, as the checkpoint's provenance records it."""
    return asdict(cfg)
