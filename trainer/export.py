"""`trainer export --onnx`: a qa checkpoint as the ONNX model that is deployed, self-describing.

The checkpoint's module goes through torch's ONNX exporter (the torch.export-based one, torch's
default, with onnxscript) at opset OPSET with a dynamic batch axis: input `images` (B, 3, crop,
crop), already normalised as the checkpoint's preprocessing says; output `logits` (B, C), before
the temperature. Its metadata_props carry what qa needs to gate the file alone
(qa.onnx_model.metadata_props: arch, class names, preprocessing, temperature and the source
checkpoint's sha256), so `qa run SUITE model.onnx` needs no `model:` in the suite. The file is
one protobuf (no external data: qa refuses that) written atomically.
"""

import hashlib
from pathlib import Path

import torch

from qa.checkpoint import load_model
from qa.errors import InputError, first_line
from qa.io import atomic_path, check_writable
from qa.onnx_model import EXTRA_HINT, metadata_props
from qa.torchfile import quiet

OPSET = 18


def export_onnx(checkpoint: str | Path, out: str | Path) -> dict:
    """Export the qa checkpoint `checkpoint` to the ONNX file `out`; returns what was written
    (path, sha256, the source's sha256, opset) for the command line to print."""
    if Path(out).resolve() == Path(checkpoint).resolve():
        raise InputError(f"{out}: refusing to overwrite the input checkpoint; choose another --out")
    check_writable(out, "--out")
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter needs it; say so before exporting)
    except ImportError:
        raise InputError(f"export --onnx needs onnx and onnxscript: {EXTRA_HINT}") from None
    model = load_model(checkpoint)
    crop = int(model.preprocessing["crop"])
    example = (torch.zeros(2, 3, crop, crop),)
    try:
        with quiet():
            program = torch.onnx.export(
                model.module,
                example,
                None,
                input_names=["images"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        raise InputError(
            f"{checkpoint}: cannot export {model.arch} to ONNX ({first_line(exc)})"
        ) from None
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata_props(model))
    try:
        data = proto.SerializeToString()
    except ValueError:  # protobuf's 2 GB limit
        raise InputError(
            f"{checkpoint}: the model is too large for one ONNX file (2 GB), and qa reads no "
            "external data"
        ) from None
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return {
        "path": str(out),
        "sha256": hashlib.sha256(data).hexdigest(),
        "source_sha256": model.digest,
        "opset": OPSET,
    }
