"""Streaming, batched passes of models over one split: the only place qa runs a model.

One pass decodes every image of a split (or of one rank's shard of it) once: a DataLoader
reads each file's bytes once, hashes them (the data fingerprint needs them, so no second read)
and decodes them to a [0, 1] tensor with the model's resize and crop. Each decoded batch then
goes to every transform the pass carries (clean, and each perturbation at each severity) and,
for each, to every model that needs it; each model normalises the batch its own way. Logits go
to a sink per view as they are computed, so only one batch of images and one batch of logits
per view are ever in memory. Adversarial views keep a pass of their own (their images depend
on the model attacked).
"""

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from qa import data
from qa.adversarial import attack_view
from qa.checkpoint import LoadedModel
from qa.data import Sample
from qa.errors import InputError
from qa.evidence import SEED, Split, View
from qa.precision import autocast, device_type, prepare, to_input
from qa.preprocess import decode_bytes, normalize, to_unit_tensor

# A perturbation: a batch of [0, 1] images, the view naming it (perturbation, severity) and
# each image's sample id (so its randomness is per sample, whatever the batching) -> a batch.
Perturb = Callable[[torch.Tensor, View, list[str]], torch.Tensor]


def resolve_device(name: str) -> torch.device:
    """The torch device for `--device`; InputError when CUDA is asked for but absent."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda: CUDA is not available on this machine "
            f"(torch {torch.__version__}, cuda build {torch.version.cuda or 'none'}); use --device cpu"
        )
    if name not in ("cpu", "cuda"):
        raise InputError(f"--device: expected cpu or cuda, found {name!r}")
    return torch.device(name)


def default_workers(device: torch.device | str) -> int:
    """DataLoader workers: none on CPU, where the forward pass already uses every core; a few
    on CUDA, where decoding in parallel keeps the GPU fed."""
    return 0 if device_type(device) == "cpu" else min(4, max(1, (os.cpu_count() or 2) - 1))


class ImageFiles(TorchDataset):
    """Reads sample i once and decodes it to a [0, 1] tensor; also returns the sha256 of the
    bytes read. A file that does not decode is reported, not raised (an exception inside a
    loader worker would lose the one-line message)."""

    def __init__(self, samples: list[Sample], preprocessing: dict):
        self.samples = samples
        self.transform = to_unit_tensor(preprocessing)
        self.crop = int(preprocessing["crop"])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        try:
            blob = data.read_bytes(self.samples[i])  # the one read of this file in the pass
        except InputError as exc:
            return self._blank(), i, str(exc), ""
        digest = hashlib.sha256(blob).hexdigest()
        try:
            return self.transform(decode_bytes(blob)), i, "", digest
        except Exception as exc:  # PIL raises many types for a bad file
            return self._blank(), i, f"{type(exc).__name__}: {exc}", digest

    def _blank(self):
        """The stand-in for a file that could not be read or decoded (reported, never scored)."""
        return torch.zeros(3, self.crop, self.crop)


@dataclass
class Transform:
    """What a pass does to each decoded batch for some views: `view` names the perturbation
    (None: clean), and each (model, sink) gets that model's logits of the transformed batch.
    A sink is called as sink(sample indices, logits (B, C) float32 numpy)."""

    view: View | None
    outputs: list[tuple[LoadedModel, Callable[[np.ndarray, np.ndarray], None]]]


def run_pass(
    split: Split,
    rows: range,
    transforms: list[Transform],
    settings: dict,
    advance=None,
) -> list[str]:
    """One streaming pass over samples `rows` of a split: decode each batch once, then every
    transform and every model of it; returns the sha256 of each sample's bytes, in `rows` order.

    All models of one pass share the decoded batch, so they see identical pixels (they must
    share resize, crop and interpolation: the caller groups views so). Logits are float32,
    divided by each model's temperature; InputError names the first file that cannot be read
    or decoded.
    """
    torch.manual_seed(SEED)  # the engine imports torch only when a view must be computed
    ids = split.dataset.ids
    device, precision = torch.device(settings["device"]), settings.get("precision", "fp32")
    norms = {id(m): normalize(m.preprocessing) for t in transforms for m, _ in t.outputs}
    for t in transforms:
        for model, _ in t.outputs:
            prepare(model.module, device, precision)
    digests: list[str] = []
    first = transforms[0].outputs[0][0]
    with torch.inference_mode(), autocast(device, precision):
        for images, index, batch_digests in _batches(split, rows, first.preprocessing, settings):
            digests.extend(batch_digests)
            batch_ids = [ids[i] for i in index.tolist()]
            for t in transforms:
                seen = images if t.view is None else settings["perturb"](images, t.view, batch_ids)
                for model, sink in t.outputs:
                    logits = model.module(norms[id(model)](seen)).float() / model.temperature
                    sink(index.numpy(), _checked(logits, model))
            if advance is not None:
                advance(len(index))
    return digests


def _batches(split: Split, rows: range, preprocessing: dict, settings: dict):
    """(images on the device, sample indices, sha256s) per batch of `rows`; InputError naming a
    file that cannot be read or decoded."""
    device, workers = torch.device(settings["device"]), settings.get("workers")
    samples = split.dataset.samples
    loader = DataLoader(
        torch.utils.data.Subset(ImageFiles(samples, preprocessing), rows),
        batch_size=settings["batch_size"],
        num_workers=default_workers(device) if workers is None else workers,
        pin_memory=device.type == "cuda",
    )
    for images, index, problems, digests in loader:
        bad = next((i for i, p in enumerate(problems) if p), None)
        if bad is not None:
            sample = samples[int(index[bad])]
            problem = problems[bad]
            if problem.startswith(str(sample.path)):  # already a whole line from read_bytes
                raise InputError(problem)
            raise InputError(f"{sample.path}: cannot decode the image ({problem})")
        yield to_input(images, device, settings.get("precision", "fp32")), index, list(digests)


def infer(
    split: Split, models: list[LoadedModel], view: View, settings: dict, advance=None
) -> list[np.ndarray]:
    """Logits (N, C) of `models` on one view of the whole split, in memory: for small splits
    (qa calibrate's), where a cache entry would only add work."""
    n = len(split.dataset.ids)
    outputs = [np.empty((n, len(m.class_names)), np.float32) for m in models]
    transform = Transform(
        None if view.perturbation is None else view,
        [(m, memory_sink(out)) for m, out in zip(models, outputs, strict=True)],
    )
    run_pass(split, range(n), [transform], settings, advance)
    return outputs


def memory_sink(out: np.ndarray) -> Callable[[np.ndarray, np.ndarray], None]:
    """A sink writing each batch's rows into `out` (N, C), by sample index."""

    def sink(index: np.ndarray, logits: np.ndarray) -> None:
        out[index] = logits

    return sink


def _checked(logits: torch.Tensor, model: LoadedModel) -> np.ndarray:
    """A batch of logits as float32 numpy; InputError when the model's output shape does not
    match the classes it names."""
    if logits.ndim != 2 or logits.shape[1] != len(model.class_names):
        raise InputError(
            f"{model.path}: the model outputs shape {tuple(logits.shape)} but names "
            f"{len(model.class_names)} classes (expected (batch, {len(model.class_names)}))"
        )
    return logits.cpu().numpy()


def infer_adversarial(
    split: Split, model: LoadedModel, labels: np.ndarray, view: View, settings: dict, advance=None
) -> np.ndarray:
    """The logits (N, C) of `model` on adversarial versions of the split's images.

    `view.perturbation` names the attack (qa.adversarial); `labels` are the true classes as
    indices into this model's logits. The attack needs gradients with respect to the input,
    so this pass runs outside inference_mode with the parameters' requires_grad switched off
    (no parameter gradient is built or accumulated), restored afterwards. PGD's random start
    comes from one generator seeded with SEED, so its draws depend on the batch size: the
    engine keys the cache on it. Attacks run in float32 whatever the run's precision: at fp16
    input gradients can underflow to zero, which would weaken the attack and flatter the model.
    """
    torch.manual_seed(SEED)
    device = torch.device(settings["device"])
    module, norm = model.module.to(device), normalize(model.preprocessing)
    generator = torch.Generator(device=device).manual_seed(SEED)
    targets = torch.as_tensor(labels, dtype=torch.int64)
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    n = len(split.dataset.ids)
    out = np.empty((n, len(model.class_names)), np.float32)
    try:
        for images, index, _ in _batches(split, range(n), model.preprocessing, settings):
            y = targets[index].to(device)
            adversarial = attack_view(module, images, y, norm, view, generator=generator)
            with torch.no_grad():
                logits = module(norm(adversarial)).float() / model.temperature
            out[index.numpy()] = _checked(logits, model)
            if advance is not None:
                advance(len(index))
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return out
