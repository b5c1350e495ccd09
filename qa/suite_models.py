"""The suite's parts below its checks: the model, the data sources, the defaults and slices
(pydantic models; qa.suite assembles them into a Suite and loads it)."""

from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from qa import shards
from qa.metrics.intervals import DEFAULT_CONFIDENCE, DEFAULT_METHOD, INTERVAL_METHODS
from qa.perturb import LADDERS
from qa.precision import DEFAULT as DEFAULT_PRECISION
from qa.precision import PRECISIONS
from qa.preprocess import Preprocessing

Scalar = str | int | float | bool


class Strict(BaseModel):
    """Every suite model: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(Strict):
    """The architecture of a plain state_dict checkpoint (self-describing ones need none)."""

    arch: str = Field(
        min_length=1, description="torchvision architecture name, or timm/NAME for a timm model"
    )
    arch_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the architecture, e.g. num_classes"
    )
    class_names: list[str] | None = Field(None, min_length=1, description="in output index order")
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)

    @model_validator(mode="after")
    def _consistent(self):
        n = self.arch_kwargs.get("num_classes")
        if self.class_names is not None and n is not None and n != len(self.class_names):
            raise ValueError(
                f"arch_kwargs.num_classes is {n} but class_names lists {len(self.class_names)}"
            )
        return self

    def resolved_class_names(self) -> list[str] | None:
        """class_names, else "0".."N-1" from arch_kwargs.num_classes, else None (ask the weights)."""
        if self.class_names is not None:
            return list(self.class_names)
        n = self.arch_kwargs.get("num_classes")
        return [str(i) for i in range(n)] if isinstance(n, int) else None


class DataSpec(Strict):
    """One split: an ImageFolder tree (`path`), a manifest CSV (`manifest`, optional `root`), or
    tar shards in webdataset's layout (`shards`, qa.shards)."""

    path: str | None = Field(None, min_length=1, description="ImageFolder root")
    manifest: str | None = Field(None, min_length=1, description="CSV of paths, labels, columns")
    root: str | None = Field(None, min_length=1, description="folder the manifest's paths are in")
    shards: str | None = Field(
        None, min_length=1, description="tar files, ranges in braces: val-{000000..000049}.tar"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        return {"path": value} if isinstance(value, str) else value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        # the JSON Schema (qa.schema) takes the folder shorthand that `_shorthand` reads
        folder = {"type": "string", "minLength": 1, "description": "ImageFolder root"}
        return {"anyOf": [folder, handler(core_schema)]}

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("path", "manifest", "shards") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of `path` (a folder), `manifest` (a CSV file) or `shards` "
                f"(tar files), found {' and '.join(given) or 'none'}"
            )
        if self.root is not None and self.manifest is None:
            raise ValueError(f"`root` belongs with `manifest`, not with `{given[0]}`")
        if self.shards is not None:
            shards.expand(self.shards)  # a malformed range is an error of the suite, with its line
        return self


class DataConfig(Strict):
    """The splits a suite reads; only `eval` is required."""

    eval: DataSpec = Field(description="the images every model-based check evaluates on")
    train: DataSpec | None = Field(None, description="the training images, for data checks")
    calibration: DataSpec | None = Field(None, description="held-out images to fit a temperature")

    def splits(self) -> dict[str, DataSpec]:
        """The declared splits by name, `eval` first."""
        named = {"eval": self.eval, "train": self.train, "calibration": self.calibration}
        return {k: v for k, v in named.items() if v is not None}


class Defaults(Strict):
    """Settings shared by every check of the suite."""

    confidence: float = Field(
        DEFAULT_CONFIDENCE,
        gt=0.5,
        lt=1,
        description="confidence of every one-sided bound a gate compares",
    )
    batch_size: int = Field(256, ge=1, description="inference batch size")
    interval: Literal[INTERVAL_METHODS] = Field(
        DEFAULT_METHOD, description="binomial interval method"
    )
    corruption_ladder: Literal[LADDERS] = Field(
        "auto", description="corruption severities: auto (by image size), imagenet_c or cifar10_c"
    )
    precision: Literal[PRECISIONS] = Field(
        DEFAULT_PRECISION,
        description="forward-pass precision: fp32, bf16 (autocast, CUDA or CPU) or fp16 "
        "(autocast, CUDA only); below fp32 with channels_last. `qa run --precision` overrides it",
    )


class Slice(Strict):
    """A subset of the eval samples, by a metadata column (values are compared as text)."""

    column: str = Field(min_length=1, description="an extra column of the eval manifest CSV")
    equals: Scalar | None = Field(None, description="the one value of the slice")
    in_: list[Scalar] | None = Field(
        None, alias="in", min_length=1, description="the values of the slice"
    )

    @model_validator(mode="after")
    def _one_condition(self):
        if (self.equals is None) == (self.in_ is None):
            raise ValueError("give exactly one of `equals: VALUE` or `in: [VALUES]`")
        return self

    def mask(self, values: np.ndarray) -> np.ndarray:
        """Which samples belong to the slice, given the column's per-sample values."""
        text = np.asarray(values).astype(str)
        wanted = [self.equals] if self.in_ is None else self.in_
        return np.isin(text, [str(v) for v in wanted])

    def as_dict(self) -> dict:
        """The slice as written in the suite, e.g. {"column": "camera", "equals": "A"}."""
        return self.model_dump(by_alias=True, exclude_none=True)


class Slices(Strict):
    """Every value of a metadata column, each gated as its own slice (qa.slicing)."""

    column: str = Field(min_length=1, description="an extra column of the eval manifest CSV")
    min_size: int = Field(
        1, ge=1, description="a slice with fewer eval samples is listed as skipped, not gated"
    )
