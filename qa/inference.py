"""Streaming, batched passes of models over one split: the only place qa runs a model.

A DataLoader decodes each image to a [0, 1] tensor (the model's resize and crop); an optional
perturbation or attack acts on that batch; then each model normalises it its own way and
runs. Only logits stay in memory; images stream.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from qa.adversarial import attack_view
from qa.checkpoint import LoadedModel
from qa.data import Dataset, Sample
from qa.errors import InputError
from qa.evidence import View
from qa.preprocess import load_rgb, normalize, to_unit_tensor

SEED = 0
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


def default_workers(device: torch.device) -> int:
    """DataLoader workers: none on CPU, where the forward pass already uses every core; a few
    on CUDA, where decoding in parallel keeps the GPU fed."""
    return 0 if device.type == "cpu" else min(4, max(1, (os.cpu_count() or 2) - 1))


class ImageFiles(TorchDataset):
    """Decodes sample i to a [0, 1] tensor; a file that does not decode is reported, not raised
    (an exception inside a loader worker would lose the one-line message)."""

    def __init__(self, samples: list[Sample], preprocessing: dict):
        self.paths = [str(s.path) for s in samples]
        self.transform = to_unit_tensor(preprocessing)
        self.crop = int(preprocessing["crop"])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return self.transform(load_rgb(self.paths[i])), i, ""
        except Exception as exc:  # PIL raises many types for a bad file
            return torch.zeros(3, self.crop, self.crop), i, f"{type(exc).__name__}: {exc}"


@dataclass
class Split:
    """One split's data, its labels as indices into the candidate's classes, its fingerprint."""

    dataset: Dataset
    labels: np.ndarray
    fingerprint: str | None = None


def _batches(split: Split, preprocessing: dict, settings: dict):
    """(images on the device, sample indices) per batch; InputError naming an undecodable file."""
    device = settings["device"]
    loader = DataLoader(
        ImageFiles(split.dataset.samples, preprocessing),
        batch_size=settings["batch_size"],
        num_workers=settings["workers"],
        pin_memory=device.type == "cuda",
    )
    for images, index, problems in loader:
        bad = next((i for i, p in enumerate(problems) if p), None)
        if bad is not None:
            path = split.dataset.samples[int(index[bad])].path
            raise InputError(f"{path}: cannot decode the image ({problems[bad]})")
        yield images.to(device, non_blocking=True), index


def infer(
    split: Split, models: list[LoadedModel], view: View, settings: dict, advance=None
) -> list[np.ndarray]:
    """One streaming pass over a split: decode, perturb, then each model; logits (N, C) each.

    The models share the decoded (and perturbed) batch, so they see identical pixels; the
    logits are float32 and divided by each model's temperature.
    """
    ids = split.dataset.ids
    norms = [normalize(m.preprocessing) for m in models]
    outputs: list[np.ndarray | None] = [None] * len(models)
    for m in models:
        m.module.to(settings["device"])
    with torch.inference_mode():
        for images, index in _batches(split, models[0].preprocessing, settings):
            if view.perturbation is not None:
                images = settings["perturb"](images, view, [ids[i] for i in index.tolist()])
            for j, (model, norm) in enumerate(zip(models, norms, strict=True)):
                logits = model.module(norm(images)).float() / model.temperature
                outputs[j] = _place(outputs[j], logits, index.numpy(), model, len(ids))
            if advance is not None:
                advance(len(index))
    return [_filled(o, m) for o, m in zip(outputs, models, strict=True)]


def infer_adversarial(
    split: Split, model: LoadedModel, labels: np.ndarray, view: View, settings: dict, advance=None
) -> np.ndarray:
    """The logits (N, C) of `model` on adversarial versions of the split's images.

    `view.perturbation` names the attack (qa.adversarial); `labels` are the true classes as
    indices into this model's logits. The attack needs gradients with respect to the input,
    so this pass runs outside inference_mode with the parameters' requires_grad switched off
    (no parameter gradient is built or accumulated), restored afterwards. PGD's random start
    comes from one generator seeded with SEED, so its draws depend on the batch size: the
    engine keys the cache on it.
    """
    device = settings["device"]
    module, norm = model.module.to(device), normalize(model.preprocessing)
    generator = torch.Generator(device=device).manual_seed(SEED)
    targets = torch.as_tensor(labels, dtype=torch.int64)
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    out = None
    try:
        for images, index in _batches(split, model.preprocessing, settings):
            y = targets[index].to(device)
            adversarial = attack_view(module, images, y, norm, view, generator=generator)
            with torch.no_grad():
                logits = module(norm(adversarial)).float() / model.temperature
            out = _place(out, logits, index.numpy(), model, len(split.dataset.ids))
            if advance is not None:
                advance(len(index))
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return _filled(out, model)


def _filled(out: np.ndarray | None, model: LoadedModel) -> np.ndarray:
    """The pass's logits, or an empty (0, C) array for a split with no samples."""
    return out if out is not None else np.empty((0, len(model.class_names)), np.float32)


def _place(out: np.ndarray | None, logits: torch.Tensor, index, model: LoadedModel, n: int):
    """Write a batch of logits into the (N, C) output, allocated on the first batch."""
    if logits.ndim != 2 or logits.shape[1] != len(model.class_names):
        raise InputError(
            f"{model.path}: the model outputs shape {tuple(logits.shape)} but names "
            f"{len(model.class_names)} classes (expected (batch, {len(model.class_names)}))"
        )
    if out is None:
        out = np.empty((n, logits.shape[1]), dtype=np.float32)
    out[index] = logits.cpu().numpy()
    return out
