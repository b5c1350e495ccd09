"""ONNX models: read one safely, take its metadata, run it through onnxruntime, describe it.

An `.onnx` file is a protobuf ModelProto (qa.torchfile.archive_kind tells it by its first
field). Loading one runs no Python code (onnxruntime interprets the graph), so it needs no
--trust-checkpoint; two things are still refused, each in one line: operators of a custom
domain (they would need a custom-op library, which qa never registers; ONNX's own domains,
onnxruntime's `com.microsoft` and the model's own local functions are fine) and tensors stored
as external data (a path the file names, which could point anywhere, and bytes outside the
file: the file's sha256 would no longer be the digest of what is loaded, and the cache keyed
on it could serve another model's logits).

Metadata: `trainer export --onnx` (trainer.export) writes the model's description as
`metadata_props`, JSON strings under keys prefixed `qa.` (`metadata_props` below). A file
without them takes class names and preprocessing from the suite's `model:`. When both give a
value they must agree (the file's preprocessing keys the suite sets, its class names):
a conflict is an error, never a silent choice. The temperature comes from the file only.

`OnnxModule` wraps an onnxruntime session as a torch module, so the engine (qa.inference) runs
it as any other model: CPU provider, or CUDA where onnxruntime has it and the run is on CUDA.
It runs at fp32 and has no gradients: a reduced-precision run or an adversarial check is
refused in one line.
"""

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import nn

from qa import suite_errors as err
from qa.checkpoint import LoadedModel
from qa.errors import InputError, first_line
from qa.preprocess import Preprocessing
from qa.torchfile import FileBytes, read_file

PREFIX = "qa."
EXTRA_HINT = "pip install 'qa[onnx]'"
# onnxruntime implements these without any library of the user's: ONNX's own and its contrib ops
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")
_EXTERNAL = 1  # onnx.TensorProto.EXTERNAL
_FLOAT = 1  # onnx.TensorProto.FLOAT
NAMES_HINT = (
    "export it with `trainer export --onnx`, or add `model: {arch: NAME, class_names: [...], "
    "preprocessing: {...}}` to the suite"
)


class OnnxMeta(BaseModel):
    """What a qa ONNX export says of itself in its metadata_props (each value a JSON string)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str | None = Field(None, min_length=1)
    class_names: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1)
    preprocessing: Preprocessing | None = None
    temperature: float = Field(1.0, gt=0, allow_inf_nan=False)
    source_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("class_names")
    @classmethod
    def _distinct(cls, names: list[str] | None) -> list[str] | None:
        if names is not None and len(set(names)) != len(names):
            raise ValueError("expected distinct class names, found repeats")
        return names

    @field_validator("preprocessing")
    @classmethod
    def _complete(cls, value: Preprocessing | None) -> Preprocessing | None:
        missing = [
            k for k in Preprocessing.model_fields if value and k not in value.model_fields_set
        ]
        if missing:
            raise ValueError(f"expected every key of preprocessing, found no {', '.join(missing)}")
        return value


def metadata_props(model: LoadedModel) -> dict[str, str]:
    """The metadata_props that describe `model` in an ONNX export: what `read_onnx` reads back."""
    values = {
        "arch": model.arch,
        "class_names": list(model.class_names),
        "preprocessing": dict(model.preprocessing),
        "temperature": float(model.temperature),
    }
    if model.digest:
        values["source_sha256"] = model.digest
    return {PREFIX + key: json.dumps(value) for key, value in values.items()}


def is_onnx_file(path: str | Path) -> bool:
    """Whether `path` holds an ONNX model, from its first bytes (False if it cannot be read)."""
    from qa.torchfile import archive_kind

    try:
        with open(path, "rb") as f:
            return archive_kind(f.read(8)) == "onnx"
    except OSError:
        return False


def read_onnx(blob: FileBytes, spec, trust: bool) -> LoadedModel:
    """An ONNX file's bytes as a LoadedModel (qa.formats.READERS["onnx"]); `trust` is not
    needed, as loading an ONNX model runs no code. Names and preprocessing come from the file's
    metadata or the suite's `model:` (`spec`), which must agree where both speak."""
    proto = _parse(blob)
    meta = _metadata(proto, blob.path)
    names, preprocessing = _described(meta, spec, blob.path)
    image, output = _signature(proto, names, preprocessing, blob.path)
    return LoadedModel(
        module=OnnxModule(blob, image, output),
        arch=meta.arch or (spec.arch if spec is not None else "onnx"),
        class_names=names,
        preprocessing=preprocessing,
        provenance=_provenance(proto, meta),
        temperature=meta.temperature,
        digest=blob.digest,
        path=str(blob.path),
    )


def describe_onnx(path: str | Path) -> dict:
    """An ONNX file's facts as plain data, for `qa describe`: identity, graph, qa metadata."""
    blob = read_file(path)
    proto = _parse(blob)
    meta = _metadata(proto, blob.path)
    return {
        "path": str(path),
        "sha256": blob.digest,
        "format": "onnx",
        "arch": meta.arch,
        "parameters": sum(math.prod(t.dims) for t in proto.graph.initializer),
        "inputs": {v.name: _shape(v) for v in _inputs(proto)},
        "outputs": {v.name: _shape(v) for v in proto.graph.output},
        "class_names": meta.class_names,
        "preprocessing": meta.preprocessing.model_dump() if meta.preprocessing else None,
        "temperature": meta.temperature,
        "provenance": _provenance(proto, meta),
    }


def _onnx():
    try:
        import onnx
    except ImportError:
        raise InputError(
            f"reading an ONNX model needs onnx and onnxruntime: {EXTRA_HINT}"
        ) from None
    return onnx


def _parse(blob: FileBytes):
    """The ModelProto of the bytes; InputError for a damaged file, a custom operator domain or
    external data (module docstring)."""
    onnx = _onnx()
    try:
        proto = onnx.load_model_from_string(blob.data)
    except Exception as exc:
        raise InputError(
            f"{blob.path}: not a readable ONNX model ({first_line(exc)[:160]})"
        ) from None
    local = {(f.domain, f.name) for f in proto.functions}
    for node in _nodes(proto):
        if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in local:
            raise InputError(
                f"{blob.path}: refusing an ONNX model with operators of the custom domain "
                f"{node.domain!r} ({node.op_type}): they need a custom-op library, which qa "
                "never loads; export with standard operators"
            )
    for tensor in _tensors(proto):
        if tensor.data_location == _EXTERNAL:
            raise InputError(
                f"{blob.path}: refusing an ONNX model whose tensor {tensor.name!r} is stored as "
                "external data (a path outside the file, not covered by its sha256); save it "
                "as one file: onnx.save_model(model, path, save_as_external_data=False)"
            )
    return proto


def _graphs(graph) -> Iterator:
    """`graph` and every subgraph of its nodes' attributes (If, Loop, Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from _graphs(sub)


def _nodes(proto) -> Iterator:
    for graph in _graphs(proto.graph):
        yield from graph.node
    for function in proto.functions:
        yield from function.node


def _tensors(proto) -> Iterator:
    """Every tensor the model stores: initializers and attribute constants, everywhere."""
    for graph in _graphs(proto.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
    for node in _nodes(proto):
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors


def _metadata(proto, path: Path) -> OnnxMeta:
    """The `qa.` metadata_props, validated; other props are left alone."""
    raw = {}
    for prop in proto.metadata_props:
        if prop.key.startswith(PREFIX):
            key = prop.key.removeprefix(PREFIX)
            try:
                raw[key] = json.loads(prop.value)
            except ValueError:
                raise InputError(
                    f"{path}: metadata_props {prop.key}: expected a JSON value, "
                    f"found {err.found(prop.value)}"
                ) from None
    try:
        return OnnxMeta.model_validate(raw, strict=True)
    except ValidationError as exc:
        at, message = err.problems(exc, OnnxMeta, (), raw)[0]
        raise InputError(f"{path}: metadata_props {PREFIX}{err.dotted(at)}: {message}") from None


def _described(meta: OnnxMeta, spec, path: Path) -> tuple[list[str], dict]:
    """Class names and preprocessing from the file and the suite's `model:`; InputError when
    neither gives them or both give different ones."""
    suite_names = spec.resolved_class_names() if spec is not None else None
    names = meta.class_names or suite_names
    if names is None:
        raise InputError(f"{path}: the ONNX model does not name its classes; {NAMES_HINT}")
    if meta.class_names and suite_names and suite_names != meta.class_names:
        raise InputError(
            f"{path}: the suite's model.class_names {suite_names} conflict with the model's "
            f"{PREFIX}class_names {meta.class_names}; remove the suite's or make them agree"
        )
    if meta.preprocessing is None:
        if spec is None:
            raise InputError(
                f"{path}: the ONNX model does not give its preprocessing; {NAMES_HINT}"
            )
        return list(names), spec.preprocessing.model_dump()
    own = meta.preprocessing.model_dump()
    if spec is not None and "preprocessing" in spec.model_fields_set:
        for key in sorted(spec.preprocessing.model_fields_set):
            if getattr(spec.preprocessing, key) != own[key]:
                raise InputError(
                    f"{path}: the suite's model.preprocessing.{key} "
                    f"{getattr(spec.preprocessing, key)} conflicts with the model's "
                    f"{PREFIX}preprocessing {key} {own[key]}; remove the suite's or make them agree"
                )
    return list(names), own


def _inputs(proto) -> list:
    """The graph's inputs that are fed (older exports also list their initializers)."""
    stored = {t.name for t in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in stored]


def _shape(value) -> list:
    return [
        d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
        for d in value.type.tensor_type.shape.dim
    ]


def _signature(proto, names: list[str], preprocessing: dict, path: Path) -> tuple[str, str]:
    """The names of the image input and the logits output; InputError when the graph does not
    take one float (batch, 3, crop, crop) input or gives no output of one score a class."""
    inputs, crop = _inputs(proto), int(preprocessing["crop"])
    want = f"one float32 input of shape (batch, 3, {crop}, {crop})"
    if len(inputs) != 1:
        raise InputError(f"{path}: expected {want}, found {len(inputs)} inputs")
    if inputs[0].type.tensor_type.elem_type != _FLOAT:
        kind = _onnx().TensorProto.DataType.Name(inputs[0].type.tensor_type.elem_type)
        raise InputError(f"{path}: expected {want}, found an input of {kind.lower()}")
    shape = _shape(inputs[0])
    if len(shape) != 4 or any(
        isinstance(got, int) and got != size
        for got, size in zip(shape[1:], (3, crop, crop), strict=True)
    ):
        raise InputError(f"{path}: expected {want}, found shape {shape}")
    out_shape = _shape(proto.graph.output[0]) if proto.graph.output else None
    classes = out_shape[1] if out_shape and len(out_shape) == 2 else None
    if classes is None or (isinstance(classes, int) and classes != len(names)):
        raise InputError(
            f"{path}: expected the first output to be (batch, {len(names)}), one score per "
            f"class, found {out_shape or 'no output'}"
        )
    return inputs[0].name, proto.graph.output[0].name


def _provenance(proto, meta: OnnxMeta) -> dict:
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    prov: dict[str, Any] = {"format": "onnx", "opset": opsets.get("ai.onnx")}
    if proto.producer_name:
        prov["producer"] = f"{proto.producer_name} {proto.producer_version}".strip()
    if meta.source_sha256:
        prov["source_sha256"] = meta.source_sha256
    return prov


class OnnxModule(nn.Module):
    """An ONNX model as a torch module: (B, 3, H, W) float batch in, (B, C) logits out, on the
    batch's device. A CPU session is made at load (so a model onnxruntime cannot run is refused
    there), a CUDA one on the first batch on CUDA where onnxruntime has that provider."""

    def __init__(self, blob: FileBytes, image: str, output: str):
        super().__init__()
        self._blob, self._image, self._output = blob, image, output
        self._sessions: dict[bool, Any] = {}
        self._session(cuda=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Run the session on the batch; fp32 only, no gradients (module docstring)."""
        path = self._blob.path
        if images.requires_grad:
            raise InputError(
                f"{path}: an ONNX model gives qa no gradients, so adversarial checks need the "
                "torch checkpoint it was exported from"
            )
        if torch.is_autocast_enabled(images.device.type):
            raise InputError(f"{path}: an ONNX model runs at fp32 in qa; use --precision fp32")
        batch = images.detach().float().contiguous().cpu().numpy()
        try:
            (logits,) = self._session(images.device.type == "cuda").run(
                [self._output], {self._image: batch}
            )
        except Exception as exc:
            raise InputError(
                f"{path}: onnxruntime failed on a batch ({first_line(exc)[:160]})"
            ) from None
        return torch.from_numpy(logits).to(images.device)

    def _session(self, cuda: bool):
        """The session for a batch on CUDA (`cuda`) or the CPU: onnxruntime's CUDA provider
        where it has one, else its CPU provider (never another: its Azure one calls out)."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError(f"running an ONNX model needs onnxruntime: {EXTRA_HINT}") from None
        cuda = cuda and "CUDAExecutionProvider" in ort.get_available_providers()
        if cuda not in self._sessions:
            providers = ["CUDAExecutionProvider"] if cuda else []
            providers.append("CPUExecutionProvider")
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: qa reports one line of its own
            try:
                self._sessions[cuda] = ort.InferenceSession(
                    self._blob.data, options, providers=providers
                )
            except Exception as exc:
                raise InputError(
                    f"{self._blob.path}: onnxruntime cannot load the model ({first_line(exc)[:160]})"
                ) from None
        return self._sessions[cuda]
