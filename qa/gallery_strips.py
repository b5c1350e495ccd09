"""The gallery's perturbation strips: one eval image clean and at severities 1-5 of each
perturbation the suite's views use, made as the engine's pass makes them (the candidate's
decode, resize and crop, the run's perturbation hook with its seed and ladder, on the run's
device and precision), with the candidate's prediction wherever the suite computed that view.

A strip is a function of the image's bytes (the split's data fingerprint and the sample's id),
the preprocessing, the perturbation (and a plugin's code), the ladder, the seed, the device
type and the precision, so its data URIs are kept in the run's cache folder by those, in the
cache's checked table format: a run whose views are all cached shows its strips without
importing torch. An entry that fails its checksum, or is not six data URIs, is made again.
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from qa import plugins
from qa.engine import EvidenceRequest
from qa.evidence import CLEAN, SEED, Evidence, View
from qa.gallery_images import kept_uris, tensor_uri
from qa.perturb import SEVERITIES
from qa.precision import autocast, device_type
from qa.preprocess import to_unit_tensor

if TYPE_CHECKING:
    import torch

    from qa.gallery import _Lookup

FRAMES = 1 + len(SEVERITIES)  # clean, then each severity


def strip_images(
    image: "torch.Tensor", sample_id: str, name: str, request: EvidenceRequest
) -> "list[torch.Tensor]":
    """`image` (the model input: decoded, resized, cropped, (3, H, W) in [0, 1]) clean and at
    severities 1-5 of perturbation `name`, as the engine's pass makes them: the request's
    perturbation hook (its seed and ladder; the draws depend on the sample id, not the batch)
    on the request's device, under its precision's autocast, since a CUDA generator draws
    other numbers than the CPU's."""
    import torch  # a strip is made by the run's perturbation hook, on tensors

    batch = image[None].to(request.device)
    out = [image]
    with torch.inference_mode(), autocast(request.device, request.precision):
        for severity in SEVERITIES:
            view = View(perturbation=name, severity=severity)
            out.append(request.perturb(batch, view, [sample_id])[0].float().cpu())
    return out


def strips(evidence: Evidence, look: "_Lookup", request: EvidenceRequest, order: np.ndarray):
    """(total, items, {}) of one strip per perturbation the suite's eval views use, on the
    first eval sample in `order` that decodes; None when it uses none, or none decodes."""
    names = list(
        dict.fromkeys(
            v.perturbation
            for v in evidence.arrays
            if v.kind == "logits" and v.split == "eval" and v.perturbation is not None
        )
    )
    if not names or request.perturb is None:
        return None
    chosen = next(
        (
            (int(i), pixels)
            for i in order
            if (pixels := look.decoded("eval", evidence.sample_ids[i])) is not None
        ),
        None,
    )
    if chosen is None:
        return None
    index, pixels = chosen
    sample_id = evidence.sample_ids[index]
    made: dict = {}  # the model input, made (with torch) for the first strip not kept

    def uris(name: str) -> list[str] | None:
        def make() -> list[str] | None:
            try:
                if "image" not in made:
                    made["image"] = to_unit_tensor(look.preprocessing)(pixels)
                images = strip_images(made["image"], sample_id, name, request)
            except Exception:  # a perturbation the engine could not apply either: no strip
                return None
            return [tensor_uri(picture) for picture in images]

        return kept_uris(request.cache_dir, _parts(name, sample_id, look, request), FRAMES, make)

    def items() -> Iterator[dict]:
        for name in names:
            frames_uris = uris(name)
            if frames_uris is None:
                continue
            frames = []
            for severity, uri in zip((0, *SEVERITIES), frames_uris, strict=True):
                frame = {"severity": severity, "data_uri": uri}
                view = CLEAN if severity == 0 else View(perturbation=name, severity=severity)
                if view in evidence.arrays:
                    logits = evidence.logits(view)[index]
                    frame["predicted"] = look.names[int(np.argmax(logits))]
                frames.append(frame)
            yield {
                "perturbation": name,
                "id": sample_id,
                "label": look.names[evidence.labels[index]],
                "images": frames,
            }

    return len(names), items(), {}


def _parts(name: str, sample_id: str, look: "_Lookup", request: EvidenceRequest) -> dict | None:
    """What a strip is made from, naming it in the cache; None when the eval split has no
    fingerprint (a run without a cache)."""
    fingerprint = request.splits["eval"].fingerprint
    if fingerprint is None:
        return None
    return {
        "strip": name,
        "id": sample_id,
        "data": fingerprint,
        "preprocessing": look.preprocessing,
        "ladder": request.ladder,
        "seed": SEED,
        "device": device_type(request.device),
        "precision": request.precision,
        "code": plugins.perturbation_code(name),
    }
