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
                    prediction wherever the suite computed that view (qa.gallery_strips)
pairs               the two files a duplicate or leakage check matched, side by side

Model-related images are the model's input (resized and cropped: mistakes and flips with PIL,
so that a run whose views are all cached imports no torch; strips with the engine's own
torchvision transform, since the perturbation acts on it); pairs show the files as the data
checks decode them. qa.gallery_images makes the data URIs and keeps them in the cache folder,
so a warm run reads no file for its mistakes, flips and pairs. Size is bounded whatever the
number of samples: an image is at most qa.gallery_images.MAX_SIDE pixels a side (a smaller one
stays at its size, the page enlarges it), PNG or JPEG, whichever is smaller; a section shows
at most MAX_ITEMS; and all data URIs together are at most BUDGET characters: each section
takes an even share of what the ones before it left, and stops at the first item that would
pass its share (a strip counts as one item).
"""

from collections.abc import Iterator

import numpy as np

from qa import data
from qa.data import Dataset, Sample
from qa.engine import EvidenceRequest
from qa.evidence import BASELINE, CLEAN, Evidence
from qa.gallery_images import image_uri, kept_uris, shown_input
from qa.gallery_strips import strip_images as strip_images  # public: tests remake a strip
from qa.gallery_strips import strips
from qa.preprocess import decode_bytes

MAX_ITEMS = 12
BUDGET = 600_000  # characters of data URIs in the whole gallery
CHUNK = 4096  # rows of logits read at a time


def build_gallery(suite, evidence: Evidence, request: EvidenceRequest, outcomes) -> dict:
    """The result document's `gallery` (see the module docstring) of a finished run: `suite`
    (its checks' parameters say which split a pair's files are in), the run's evidence and
    request (splits, perturbation hook, device, precision), the checks' outcomes."""
    look = _Lookup(request, evidence)
    makers = [
        ("confident_mistakes", lambda: _mistakes(evidence, look)),
        ("negative_flips", lambda: _flips(evidence, look, outcomes)),
        ("perturbations", lambda: strips(evidence, look, request, _strip_order(evidence))),
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
        self.cache_dir = request.cache_dir
        self.fingerprints = {k: s.fingerprint for k, s in request.splits.items()}

    def sample(self, split: str, sample_id: str) -> Sample | None:
        """The sample `sample_id` of `split`; None when the run has no such split or id."""
        if split not in self._by_id:
            dataset = self.datasets.get(split)
            self._by_id[split] = (
                dict(zip(dataset.ids, dataset.samples, strict=True)) if dataset else {}
            )
        return self._by_id[split].get(sample_id)

    def decoded(self, split: str, sample_id: str) -> np.ndarray | None:
        """The sample's decoded pixels (qa.preprocess.decode_bytes); None if it does not decode."""
        sample = self.sample(split, sample_id)
        if sample is None:
            return None
        try:
            return decode_bytes(data.read_bytes(sample))
        except Exception:  # unreadable or undecodable (PIL raises many types): no image
            return None

    def file_uri(self, split: str, sample_id: str) -> str | None:
        """The file as the data checks decode it, as a data URI; None if it does not decode."""

        def make() -> list[str] | None:
            pixels = self.decoded(split, sample_id)
            return None if pixels is None else [image_uri(pixels)]

        return self._kept(split, sample_id, None, make)

    def input_uri(self, sample_id: str) -> str | None:
        """The eval sample's model input, resized and cropped with PIL (`shown_input`), as a
        data URI; None if it does not decode."""

        def make() -> list[str] | None:
            pixels = self.decoded("eval", sample_id)
            return None if pixels is None else [image_uri(shown_input(pixels, self.preprocessing))]

        return self._kept("eval", sample_id, self.preprocessing, make)

    def _kept(self, split: str, sample_id: str, preprocessing, make) -> str | None:
        """One picture of a sample, kept in the cache folder by the split's fingerprint, the
        sample's id and how it is shown (`preprocessing`: the model's input; None: the file)."""
        fingerprint = self.fingerprints.get(split)
        parts = None
        if fingerprint is not None:
            parts = {"split": split, "id": sample_id, "data": fingerprint, "shown": preprocessing}
        uris = kept_uris(self.cache_dir, parts, 1, make)
        return None if uris is None else uris[0]


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


def _strip_order(evidence: Evidence) -> np.ndarray:
    """Eval samples in the order a strip's image is chosen: those the candidate gets right on
    clean data first (a strip shows where a corruption turns it wrong), then the rest."""
    order = np.arange(len(evidence.labels))
    if CLEAN not in evidence.arrays:
        return order
    right = _predictions(evidence.logits(CLEAN))[1] == evidence.labels
    return np.concatenate([order[right], order[~right]])


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
