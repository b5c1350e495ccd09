"""The metadata of a qa checkpoint, validated by one pydantic schema on every read and write.

A checkpoint is a plain dict saved with `torch.save`, readable with `weights_only=True`:

    format            "qa-checkpoint"
    format_version    1
    arch, arch_kwargs architecture name (torchvision's, or timm/NAME) and its constructor arguments
    class_names       in index order: distinct, non-empty strings, one per output of the head
    preprocessing     {"resize", "crop", "mean", "std", "interpolation"}: every key, validated
                      by qa.preprocess.Preprocessing as the suite's `model.preprocessing` is
    state_dict        the weights (names to tensors)
    provenance        config, metrics, versions, git commit, creation time, data fingerprint
    temperature       optional: divides the logits (set by calibration); finite and > 0
    train_state       optional: optimiser, scheduler, RNG states and epoch, for --resume

Validation is strict (no coercion: "9" is not a version, 1 is not a class name) and rejects
unknown keys. Whether the architecture accepts `arch_kwargs`, and whether the weights and class
names fit it, is checked where the model is built (qa.architectures). Every problem is one InputError
line: `FILE: KEY.PATH: expected ..., found ...`.
"""

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, InstanceOf, ValidationError, field_validator

from qa import suite_errors as err
from qa.errors import InputError
from qa.preprocess import Preprocessing

FORMAT = "qa-checkpoint"
FORMAT_VERSION = 1


class CheckpointMeta(BaseModel):
    """What a qa checkpoint holds; `validate_checkpoint` applies it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["qa-checkpoint"]
    format_version: int = Field(ge=1, le=FORMAT_VERSION)
    arch: str = Field(min_length=1)
    arch_kwargs: dict[str, Any]
    class_names: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    preprocessing: Preprocessing
    state_dict: dict[str, InstanceOf[torch.Tensor]]
    provenance: dict[str, Any] = Field(default_factory=dict)
    temperature: float = Field(1.0, gt=0, allow_inf_nan=False)
    train_state: dict[str, Any] | None = None

    @field_validator("class_names")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        repeated = sorted(name for name, count in Counter(names).items() if count > 1)
        if repeated:
            raise ValueError(f"expected distinct class names, found {repeated} more than once")
        return names

    @field_validator("preprocessing")
    @classmethod
    def _complete(cls, value: Preprocessing) -> Preprocessing:
        # the suite may leave keys to their ImageNet defaults; a checkpoint records every one
        missing = [k for k in Preprocessing.model_fields if k not in value.model_fields_set]
        if missing:
            raise ValueError(
                f"expected every key of {', '.join(Preprocessing.model_fields)}, "
                f"found no {', '.join(missing)}"
            )
        return value


def validate_checkpoint(obj: Any, path: str | Path) -> dict:
    """Return `obj` if it is a valid qa checkpoint (`CheckpointMeta`), else InputError."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(
            f"{path}: expected a qa checkpoint (format {FORMAT!r}), found {kind_of(obj)}"
        )
    version = obj.get("format_version")
    if type(version) is int and version > FORMAT_VERSION:
        raise InputError(
            f"{path}: checkpoint format version {version} is newer than this qa reads "
            f"({FORMAT_VERSION}); upgrade qa"
        )
    try:
        CheckpointMeta.model_validate(obj, strict=True)
    except ValidationError as exc:
        problems = err.problems(exc, CheckpointMeta, (), obj)
        at, message = min(problems, key=lambda p: not p[1].startswith("unknown "))
        raise InputError(f"{path}: {err.dotted(at)}: {message}") from None
    return obj


def kind_of(obj: Any) -> str:
    """What was found instead of a checkpoint, for messages: a type, or a dict's first keys."""
    if isinstance(obj, dict):
        keys = list(obj)[:4]
        return f"a dict with keys {keys}{'...' if len(obj) > 4 else ''}"
    return type(obj).__name__
