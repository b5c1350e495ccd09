"""What the renderers read of a result document, as pydantic models: `qa.report.json_report.load`
validates a saved result.json with `ResultDocument` before any report is drawn from it, and
`qa schema result` prints its JSON Schema. Keys the renderers do not read are kept as they are.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qa.checks import Status
from qa.precision import PRECISIONS


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _Suite(_Strict):
    name: str
    path: str


class _Checkpoint(_Strict):
    path: str
    sha256: str | None = None  # absent from an error document
    arch: str | None = None


class _Baseline(_Strict):
    path: str
    sha256: str
    arch: str


class _Threshold(_Strict):
    metric: str
    op: str
    value: float | None


class _SliceRow(_Strict):
    value: str
    n: int
    status: Status
    confidence: float | None  # the Holm level it was judged at; None: too small, not judged
    message: str
    metrics: dict[str, Any] | None = None
    threshold: _Threshold | None = None
    effect: dict[str, Any] | None = None


class _Check(_Strict):
    name: str
    kind: str
    family: str
    severity: Literal["fail", "warn"]
    status: Status
    message: str
    metrics: dict[str, Any] | None
    threshold: _Threshold | None
    details: dict[str, Any] | None = None
    slice: dict[str, Any] | None = None
    slices: list[_SliceRow] | None = None  # a per-slice gate's rows (qa.slicing)
    seconds: float | None


class _Summary(_Strict):
    pass_: int = Field(alias="pass")  # `pass` is a Python keyword
    fail: int
    warn: int
    error: int
    skip: int


class _Overview(_Strict):
    class_names: list[str] = []
    confusion_matrix: list[list[float]] | None = None
    n: int | None = None


class _Plugin(_Strict):
    module: str
    file: str | None
    sha256: str | None


class _Environment(_Strict):
    device: str | None = None
    precision: Literal[PRECISIONS] | None = None  # absent before it was recorded: fp32
    plugins: list[_Plugin] = []  # absent before they were recorded: none


DataUri = Annotated[str, Field(pattern=r"^data:image/(png|jpeg);base64,[A-Za-z0-9+/=]*$")]


class _Mistake(_Strict):
    id: str
    label: str
    predicted: str
    confidence: float
    data_uri: DataUri


class _Flip(_Strict):
    id: str
    label: str
    baseline: str
    candidate: str
    data_uri: DataUri


class _Frame(_Strict):
    severity: int
    data_uri: DataUri
    predicted: str | None = None


class _Strip(_Strict):
    perturbation: str
    id: str
    label: str
    images: list[_Frame]


class _PairImage(_Strict):
    path: str
    split: str
    data_uri: DataUri


class _Pair(_Strict):
    check: str
    kind: str
    distance: int | None = None
    images: list[_PairImage]


class _Mistakes(_Strict):
    total: int
    shown: list[_Mistake]


class _Flips(_Strict):
    total: int
    shown: list[_Flip]
    listed_in: str | None = None


class _Strips(_Strict):
    total: int
    shown: list[_Strip]


class _Pairs(_Strict):
    total: int
    shown: list[_Pair]


class _Gallery(_Strict):
    confident_mistakes: _Mistakes | None = None
    negative_flips: _Flips | None = None
    perturbations: _Strips | None = None
    pairs: _Pairs | None = None


class _Error(_Strict):
    kind: Literal["input", "internal"]
    message: str


class ResultDocument(_Strict):
    """What the renderers read of a result document; anything else is kept as it is."""

    suite: _Suite
    verdict: Literal["pass", "fail", "error"]
    exit_code: int
    strict: bool = False
    started: str
    finished: str | None = None
    duration: float
    checkpoint: _Checkpoint
    baseline: _Baseline | None = None
    environment: _Environment = _Environment()
    overview: _Overview = _Overview()
    gallery: _Gallery = _Gallery()
    error: _Error | None = None
    summary: _Summary
    checks: list[_Check]
