"""Every setting of `trainer finetune`, with its default and help, in one place.

The command line is generated from `TrainConfig`'s fields, and a checkpoint records the whole
config, so `--resume` can rebuild a run from the file and apply only the flags given again.
"""

import types
from dataclasses import asdict, dataclass, field, fields

from qa.errors import InputError

AUGMENTATIONS = ("crop", "flip")
METRICS = ("val_acc", "val_loss")
DEVICES = ("auto", "cpu", "cuda")


def _opt(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """The settings of one fine-tuning run (see `trainer finetune --help`)."""

    data: str | None = _opt(None, "folder with train/ and val/ ImageFolder trees")
    out: str | None = _opt(None, "run folder: best.pt, last.pt, metrics.jsonl")
    arch: str = _opt("resnet18", "torchvision architecture name")
    weights: str | None = _opt(
        None, "torchvision weights, e.g. ResNet18_Weights.IMAGENET1K_V1 or DEFAULT (local cache)"
    )
    init: str | None = _opt(None, "start from a qa checkpoint or a plain state_dict")
    freeze_backbone: bool = _opt(False, "train only the classification head")
    lr: float = _opt(3e-3, "peak learning rate of the head (AdamW)")
    backbone_lr: float | None = _opt(
        None, "peak learning rate of the backbone (default: lr*0.1 when pretrained, else lr)"
    )
    weight_decay: float = _opt(0.01, "AdamW weight decay (not applied to norms and biases)")
    epochs: int = _opt(6, "number of epochs")
    batch_size: int = _opt(32, "images per step (per process under torchrun)")
    warmup_epochs: float = _opt(0.5, "linear warm-up before the cosine decay, in epochs")
    label_smoothing: float = _opt(0.0, "label smoothing of the training loss")
    grad_clip: float = _opt(0.0, "clip the gradient norm to this value (0: off)")
    augment: str = _opt("crop,flip", "comma list of crop,flip, or none")
    image_size: int | None = _opt(
        None, "input size (default: the weights' crop size, else the first training image's)"
    )
    patience: int = _opt(0, "stop after this many epochs without improvement (0: off)")
    metric: str = _opt(
        "val_acc", "metric that picks best.pt and drives --patience", choices=METRICS
    )
    target_accuracy: float | None = _opt(None, "stop once validation accuracy reaches this")
    seed: int = _opt(0, "seed of every random choice: a CPU run is bit-for-bit reproducible")
    resume: str | None = _opt(None, "continue a run from its last.pt (flags given again override)")
    device: str = _opt("auto", "auto, cpu or cuda", choices=DEVICES)
    workers: int = _opt(2, "data-loading worker processes per training process")

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
    positive = {"epochs": cfg.epochs, "batch-size": cfg.batch_size, "lr": cfg.lr}
    if cfg.backbone_lr is not None:
        positive["backbone-lr"] = cfg.backbone_lr
    if cfg.image_size is not None:
        positive["image-size"] = cfg.image_size
    for name, value in positive.items():
        if not value > 0:
            raise InputError(f"--{name}: expected a positive number, found {value}")
    non_negative = {
        "weight-decay": cfg.weight_decay,
        "warmup-epochs": cfg.warmup_epochs,
        "grad-clip": cfg.grad_clip,
        "patience": cfg.patience,
        "workers": cfg.workers,
    }
    for name, value in non_negative.items():
        if value < 0:
            raise InputError(f"--{name}: expected zero or more, found {value}")
    if not 0 <= cfg.label_smoothing < 1:
        raise InputError(
            f"--label-smoothing: expected a value in [0, 1), found {cfg.label_smoothing}"
        )
    for name, value, allowed in (("metric", cfg.metric, METRICS), ("device", cfg.device, DEVICES)):
        if value not in allowed:
            raise InputError(f"--{name}: expected one of {', '.join(allowed)}, found {value!r}")
    unknown = cfg.augmentations - set(AUGMENTATIONS)
    if unknown or not cfg.augment:
        raise InputError(
            f"--augment: expected a comma list of {', '.join(AUGMENTATIONS)} or none, "
            f"found {cfg.augment!r}"
        )


def as_record(cfg: TrainConfig) -> dict:
    """The config as plain data, as the checkpoint's provenance records it."""
    return asdict(cfg)
