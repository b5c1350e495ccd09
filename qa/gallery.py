"""The report's gallery: images a person can look at beside the numbers.

Report preparation, not a check (as qa.thumbnails): the application builds it after the checks,
from the evidence (labels, ids, logits per view) and the data files (qa.data.read_bytes), so
that the HTML report, rendered from the JSON alone, can show them. No model runs here. Four
sections, each {"total": how many there are, "shown": those embedded}:

confident_mistakes  the candidate's clean-eval mistakes, most confident first (confidence: the
                    softmax maximum of the temperature-scaled logits)
negative_flips      samples the baseline gets right and the candidate wrong, in sample order,
                    as the negative_flip_rate check lists them (`listed_in`: its name)
perturbations       for each perturbation the suite's views use, one eval image clean and at
                    severities 1-5, made as the engine's pass makes them (the candidate's
                    decode, resize and crop, the run's perturbation hook with its seed and
                    ladder, on the run's device and precision), with the candidate's
                    prediction wherever the suite computed that view
pairs               the two files a duplicate or leakage check matched, side by side

Model-related images are the model's input (resized and cropped: mistakes and flips with PIL,
so that a run whose views are all cached imports no torch; strips with the engine's own
torchvision transform, since the perturbation acts on it); pairs show the files as the data
checks decode them. Size is bounded whatever the number of samples: an image is at most
MAX_SIDE pixels a side (a smaller one stays at its size, the page enlarges it), PNG or JPEG,
whichever is smaller; a section shows at most MAX_ITEMS; and all data URIs together are at
most BUDGET characters: each section takes an even share of what the ones before it left,
and stops at the first item that would pass its share (a strip counts as one item).
"""

import base64
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from qa import data
from qa.data import Dataset, Sample
from qa.engine import EvidenceRequest
from qa.evidence import BASELINE, CLEAN, Evidence, View
from qa.perturb import SEVERITIES
from qa.precision import autocast
from qa.preprocess import decode_bytes, rgb8, to_unit_tensor

MAX_ITEMS = 12
MAX_SIDE = 80
BUDGET = 600_000  # characters of data URIs in the whole gallery
JPEG_QUALITY = 85
CHUNK = 4096  # rows of logits read at a time
RESAMPLING = {"bilinear": 2, "bicubic": 3, "nearest": 0}  # PIL.Image.Resampling's numbers

if TYPE_CHECKING:
    import torch


def build_gallery(suite, evidence: Evidence, request: EvidenceRequest, outcomes) -> dict:
    """The result document's `gallery` (see the module docstring) of a finished run: `suite`
    (its checks' parameters say which split a pair's files are in), the run's evidence and
    request (splits, perturbation hook, device, precision), the checks' outcomes."""
    look = _Lookup(request, evidence)
    makers = [
        ("confident_mistakes", lambda: _mistakes(evidence, look)),
        ("negative_flips", lambda: _flips(evidence, look, outcomes)),
        ("perturbations", lambda: _strips(evidence, look, request)),
        ("pairs", lambda: _pairs(suite, outcomes, look)),
    ]
    gallery, left = {}, BUDGET
    for i, (name, make) in enumerate(makers):
        section = make()
        if section is None:
            continue
        total, items, extra = section
        shown = _fill(items, left // (len(makers) - i))
        left -= sum(_cost(item) for item in shown)
        if shown:
            gallery[name] = {"total": total, "shown": shown, **extra}
    return gallery


def _fill(items: Iterator[dict], share: int) -> list[dict]:
    """The first MAX_ITEMS items, stopping at the first that would take the total past `share`."""
    shown, used = [], 0
    for item in items:
        cost = _cost(item)
        if used + cost > share:
            break
        shown.append(item)
        used += cost
        if len(shown) == MAX_ITEMS:
            break
    return shown


def _cost(item: dict) -> int:
    """Characters of data URIs in an item (its own, and its images')."""
    return len(item.get("data_uri", "")) + sum(len(i["data_uri"]) for i in item.get("images", []))


class _Lookup:
    """Samples by split and id, and the candidate's input transform (decode, resize, crop)."""

    def __init__(self, request: EvidenceRequest, evidence: Evidence):
        self.datasets: dict[str, Dataset] = {k: s.dataset for k, s in request.splits.items()}
        self._by_id: dict[str, dict[str, Sample]] = {}
        self.names = evidence.class_names
        self.preprocessing = evidence.model_facts["candidate"]["preprocessing"]

    def sample(self, split: str, sample_id: str) -> Sample | None:
        """The sample `sample_id` of `split`; None when the run has no such split or id."""
        if split not in self._by_id:
            dataset = self.datasets.get(split)
            self._by_id[split] = (
                dict(zip(dataset.ids, dataset.samples, strict=True)) if dataset else {}
            )
        return self._by_id[split].get(sample_id)

    def model_input(self, sample_id: str) -> "torch.Tensor | None":
        """The eval sample as the engine's pass feeds it to the models: (3, H, W) in [0, 1]."""
        sample = self.sample("eval", sample_id)
        if sample is None:
            return None
        try:
            return to_unit_tensor(self.preprocessing)(decode_bytes(data.read_bytes(sample)))
        except Exception:  # unreadable or undecodable (PIL raises many types): no image
            return None

    def file_uri(self, split: str, sample_id: str) -> str | None:
        """The file as the data checks decode it, as a data URI; None if it does not decode."""
        sample = self.sample(split, sample_id)
        if sample is None:
            return None
        try:
            return image_uri(decode_bytes(data.read_bytes(sample)))
        except Exception:  # unreadable or undecodable (PIL raises many types): no image
            return None

    def input_uri(self, sample_id: str) -> str | None:
        """The eval sample's model input, resized and cropped with PIL (`shown_input`), as a
        data URI; None if it does not decode."""
        sample = self.sample("eval", sample_id)
        if sample is None:
            return None
        try:
            return image_uri(shown_input(decode_bytes(data.read_bytes(sample)), self.preprocessing))
        except Exception:  # unreadable or undecodable (PIL raises many types): no image
            return None


def shown_input(pixels: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Decoded pixels resized and centre-cropped as the model's input is (torchvision's sizes,
    crop offsets and zero padding), with PIL's antialiased filter of the same name instead of
    torch: a picture to look at, (crop, crop, 3) in [0, 1], not the evidence."""
    img = rgb8(pixels)
    width, height = img.size
    side, crop = int(preprocessing["resize"]), int(preprocessing["crop"])
    if width <= height:
        size = (side, int(side * height / width))
    else:
        size = (int(side * width / height), side)
    if size != img.size:
        img = img.resize(size, RESAMPLING[preprocessing.get("interpolation", "bilinear")])
    unit = np.asarray(img, dtype=np.float32) / np.float32(255)
    short_h, short_w = max(crop - unit.shape[0], 0), max(crop - unit.shape[1], 0)
    unit = np.pad(
        unit, ((short_h // 2, (short_h + 1) // 2), (short_w // 2, (short_w + 1) // 2), (0, 0))
    )
    top = round((unit.shape[0] - crop) / 2.0)
    left = round((unit.shape[1] - crop) / 2.0)
    return unit[top : top + crop, left : left + crop]


def image_uri(pixels: np.ndarray) -> str:
    """Decoded pixels (H, W, 3) in [0, 1] as a data URI: at most MAX_SIDE pixels a side (shrunk
    with a Lanczos filter), PNG or JPEG at JPEG_QUALITY, whichever is fewer bytes."""
    from PIL import Image

    img = rgb8(pixels)
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    encoded = []
    for fmt, options in (("png", {"optimize": True}), ("jpeg", {"quality": JPEG_QUALITY})):
        buffer = io.BytesIO()
        img.save(buffer, format=fmt.upper(), **options)
        encoded.append((len(buffer.getvalue()), fmt, buffer.getvalue()))
    _, fmt, blob = min(encoded)
    return f"data:image/{fmt};base64," + base64.b64encode(blob).decode("ascii")


def tensor_uri(image: "torch.Tensor") -> str:
    """A (3, H, W) float image in [0, 1] as a data URI (image_uri)."""
    return image_uri(image.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())


def confidences(logits: np.ndarray) -> np.ndarray:
    """The softmax maximum of each row of (temperature-scaled) logits: 1 / sum(exp(l - max))."""
    logits = np.asarray(logits, dtype=np.float64)
    return 1.0 / np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1)


def _predictions(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(finite rows, predicted class, confidence) of (N, C) logits, read CHUNK rows at a time
    so that a memory-mapped view of a large split is never copied whole."""
    n = len(logits)
    finite, pred, conf = np.empty(n, bool), np.empty(n, np.int64), np.empty(n)
    for start in range(0, n, CHUNK):
        block = np.asarray(logits[start : start + CHUNK], dtype=np.float64)
        finite[start : start + CHUNK] = np.isfinite(block).all(axis=1)
        pred[start : start + CHUNK] = block.argmax(axis=1)
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows are left out
            conf[start : start + CHUNK] = confidences(block)
    return finite, pred, conf


def _mistakes(evidence: Evidence, look: _Lookup):
    """(total, items, {}) of the candidate's clean-eval mistakes, most confident first."""
    if CLEAN not in evidence.arrays:
        return None
    finite, pred, conf = _predictions(evidence.logits(CLEAN))
    wrong = np.flatnonzero(finite & (pred != evidence.labels))
    order = wrong[np.argsort(-conf[wrong], kind="stable")]

    def items():
        for i in order:
            uri = look.input_uri(evidence.sample_ids[i])
            if uri is not None:
                yield {
                    "id": evidence.sample_ids[i],
                    "label": look.names[evidence.labels[i]],
                    "predicted": look.names[pred[i]],
                    "confidence": float(conf[i]),
                    "data_uri": uri,
                }

    return len(order), items(), {}


def _flips(evidence: Evidence, look: _Lookup, outcomes):
    """(total, items, {"listed_in"}) of the negative flips, in sample order."""
    if CLEAN not in evidence.arrays or BASELINE not in evidence.arrays:
        return None
    cand_finite, cand_pred, _ = _predictions(evidence.logits(CLEAN))
    base_finite, base_pred, _ = _predictions(evidence.logits(BASELINE))
    finite = cand_finite & base_finite
    labels = evidence.labels
    flipped = np.flatnonzero(finite & (base_pred == labels) & (cand_pred != labels))
    listed_in = next(
        (
            o.name
            for o in outcomes
            if o.kind == "negative_flip_rate"
            and o.slice is None
            and o.result.slices is None  # a per-slice check lists its worst slice's flips only
            and "flips" in o.result.details
        ),
        None,
    )

    def items():
        for i in flipped:
            uri = look.input_uri(evidence.sample_ids[i])
            if uri is not None:
                yield {
                    "id": evidence.sample_ids[i],
                    "label": look.names[labels[i]],
                    "baseline": look.names[base_pred[i]],
                    "candidate": look.names[cand_pred[i]],
                    "data_uri": uri,
                }

    return len(flipped), items(), {"listed_in": listed_in}


def strip_images(
    image: "torch.Tensor", sample_id: str, name: str, request: EvidenceRequest
) -> "list[torch.Tensor]":
    """`image` (the model input, `_Lookup.model_input`) clean and at severities 1-5 of
    perturbation `name`, as the engine's pass makes them: the request's perturbation hook
    (its seed and ladder; the draws depend on the sample id, not the batch) on the request's
    device, under its precision's autocast, since a CUDA generator draws other numbers than
    the CPU's."""
    import torch  # a strip is made by the run's perturbation hook, on tensors

    batch = image[None].to(request.device)
    out = [image]
    with torch.inference_mode(), autocast(request.device, request.precision):
        for severity in SEVERITIES:
            view = View(perturbation=name, severity=severity)
            out.append(request.perturb(batch, view, [sample_id])[0].float().cpu())
    return out


def _strips(evidence: Evidence, look: _Lookup, request: EvidenceRequest):
    """(total, items, {}) of one strip per perturbation the suite's eval views use."""
    names = list(
        dict.fromkeys(
            v.perturbation
            for v in evidence.arrays
            if v.kind == "logits" and v.split == "eval" and v.perturbation is not None
        )
    )
    if not names or request.perturb is None:
        return None
    chosen = _strip_sample(evidence, look)
    if chosen is None:
        return None
    index, image = chosen
    sample_id = evidence.sample_ids[index]

    def items():
        for name in names:
            try:
                images = strip_images(image, sample_id, name, request)
            except Exception:  # a perturbation the engine could not apply either: no strip
                continue
            frames = []
            for severity, picture in zip((0, *SEVERITIES), images, strict=True):
                frame = {"severity": severity, "data_uri": tensor_uri(picture)}
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


def _strip_sample(evidence: Evidence, look: _Lookup) -> "tuple[int, torch.Tensor] | None":
    """The eval sample every strip shows, with its model input: the first the candidate gets
    right on clean data (so a strip shows where a corruption turns it wrong), else the first
    that decodes."""
    order = np.arange(len(evidence.labels))
    if CLEAN in evidence.arrays:
        right = _predictions(evidence.logits(CLEAN))[1] == evidence.labels
        order = np.concatenate([order[right], order[~right]])
    for index in order:
        image = look.model_input(evidence.sample_ids[index])
        if image is not None:
            return int(index), image
    return None


def _pairs(suite, outcomes, look: _Lookup):
    """(total, items, {}) of the pairs of files the data checks matched, each pair once:
    near-duplicates and exact duplicates within a split (details "pairs" or "groups"), leakage
    between eval and train (details "pairs": the eval file's "path", the train file it
    matched, "nearest")."""
    params = {c.name: c.params for c in suite.checks}
    matches, seen = [], set()  # leakage and near_leakage often match the same files
    for o in outcomes:
        details = o.result.details if isinstance(o.result.details, dict) else {}
        if o.family != "data" or not ("pairs" in details or "groups" in details):
            continue
        split = getattr(params[o.name], "split", None)
        sides = (split, split) if split else ("eval", "train")
        found = [
            (p.get("path"), p.get("nearest"), p.get("distance"))
            for p in _list(details, "pairs")
            if isinstance(p, dict)
        ]
        found += [
            (g[0], g[1], None)
            for g in _list(details, "groups")
            if isinstance(g, list) and len(g) >= 2
        ]
        for first, second, distance in found:
            key = (sides, first, second)
            if isinstance(first, str) and isinstance(second, str) and key not in seen:
                seen.add(key)
                distance = distance if isinstance(distance, int) else None
                matches.append((o, sides, first, second, distance))

    def items():
        for o, sides, first, second, distance in matches:
            images = []
            for split, path in zip(sides, (first, second), strict=True):
                uri = look.file_uri(split, path)
                if uri is not None:
                    images.append({"path": path, "split": split, "data_uri": uri})
            if len(images) == 2:
                yield {"check": o.name, "kind": o.kind, "distance": distance, "images": images}

    return len(matches), items(), {}


def _list(details: dict, key: str) -> list:
    """details[key] when it is a list (a plugin's check may put anything there), else []."""
    value = details.get(key)
    return value if isinstance(value, list) else []
