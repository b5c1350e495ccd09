"""`qa calibrate`: fit a temperature on held-out data and write a checkpoint that carries it.

Temperature scaling (Guo et al. 2017) divides the logits by one scalar T fitted by minimising
the NLL on a calibration split. It never changes a prediction (argmax is unchanged), only the
confidence. The written checkpoint stores T in its metadata; loading it applies T, and its
provenance records how T was fitted, so a later `qa run` gates the calibrated model.
"""

import datetime
from pathlib import Path

import numpy as np

from qa.checkpoint import loaded_model, read_checkpoint, save_checkpoint
from qa.data import content_fingerprint, labels_for, load_dataset
from qa.errors import InputError
from qa.evidence import CLEAN
from qa.inference import Split, default_workers, infer, resolve_device
from qa.io import check_writable
from qa.metrics import calibration as cal
from qa.suite_models import DataSpec

MIN_SAMPLES = 50


def calibrate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    device: str = "cpu",
    batch_size: int = 256,
    bins: int = 15,
) -> dict:
    """Fit T on the ImageFolder `data` and write `out`; return what was fitted and measured."""
    if Path(out).resolve() == Path(checkpoint).resolve():
        raise InputError(f"{out}: refusing to overwrite the input checkpoint; choose another --out")
    check_writable(out, "--out")  # now, not after the inference pass
    ckpt = read_checkpoint(checkpoint)
    model = loaded_model(ckpt, checkpoint)  # the weights just read, not the file read again
    dataset = load_dataset(DataSpec(path=str(data)))
    labels = labels_for(dataset, model.class_names)
    if len(labels) < MIN_SAMPLES:
        raise InputError(
            f"{data}: {len(labels)} images; fitting a temperature needs at least {MIN_SAMPLES}"
        )
    dev = resolve_device(device)
    settings = dict(device=dev, batch_size=batch_size, workers=default_workers(dev), perturb=None)
    logits = infer(Split(dataset, labels), [model], CLEAN, settings)[0].astype(np.float64)
    t = cal.fit_temperature(logits, labels)

    def scores(z: np.ndarray) -> dict:
        conf, correct = cal.top_label(cal.softmax(z), labels)
        return {
            "ece": cal.expected_calibration_error(conf, correct, bins),
            "nll": cal.negative_log_likelihood(z, labels),
        }

    before, after = scores(logits), scores(logits / t)
    record = {
        "method": "temperature scaling, NLL minimised (bounded scalar search)",
        "data": str(data),
        "data_fingerprint": content_fingerprint(dataset),
        "n": len(labels),
        "previous_temperature": model.temperature,
        "fitted_factor": t,
        "before": before,
        "after": after,
        "bins": bins,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    ckpt = {k: v for k, v in ckpt.items() if k not in ("format", "format_version", "train_state")}
    ckpt["temperature"] = model.temperature * t
    ckpt["provenance"] = {**dict(ckpt.get("provenance", {})), "calibration": record}
    try:
        save_checkpoint(out, ckpt)  # atomic: a kill or a full disk leaves no partial file
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write the checkpoint ({exc})") from None
    return {"temperature": ckpt["temperature"], **record}
