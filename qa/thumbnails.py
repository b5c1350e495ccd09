"""Thumbnails of the files a data check flagged, embedded in its result for the reports.

Report preparation, not a check: the application (qa.application) runs it after the checks,
so that the HTML report, rendered from the JSON alone, can show the images a data check
failed on.
"""

import base64
import io
from pathlib import Path

from qa import data
from qa.data import Dataset, Sample
from qa.preprocess import decode_bytes, rgb8

MAX_THUMBNAILS = 8
SIZE = 64


def thumbnail_uri(sample: Sample | str | Path, size: int = SIZE) -> str | None:
    """A PNG data URI of `sample` (or the image file at a path), at most `size` pixels a side;
    None if it does not decode. The pixels are those inference sees (qa.preprocess.decode_bytes).
    Small images are enlarged by an integer factor with nearest-neighbour (so pixels stay
    crisp); large ones are shrunk with a Lanczos filter."""
    from PIL import Image

    if not isinstance(sample, Sample):
        sample = Sample(Path(sample), 0)
    try:
        img = rgb8(decode_bytes(data.read_bytes(sample)))
    except Exception:  # PIL raises many types for a bad file; it just gets no thumbnail
        return None
    longest = max(img.size)
    if longest <= size:
        factor = size // longest
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    else:
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def attach_thumbnails(outcomes, suite, roots: dict[str, Dataset | Path]) -> None:
    """Add details["thumbnails"] to each failing or warning outcome with details["failing_paths"]
    whose kind shows them (`shows_thumbnails`, the data family's): up to MAX_THUMBNAILS
    {"path", "data_uri"}, in listed order.

    `roots` maps a split to its Dataset (whose ids the paths are), or to the folder its
    sample ids are relative to (files only, not tar shards); a check reads the split named
    by its `split` parameter (eval for train-versus-eval checks).
    """
    specs = {c.name: c for c in suite.checks}
    for outcome in outcomes:
        details = outcome.result.details
        paths = details.get("failing_paths") if isinstance(details, dict) else None
        params = specs[outcome.name].params
        if not params.shows_thumbnails or outcome.status not in ("fail", "warn") or not paths:
            continue
        source = roots.get(getattr(params, "split", "eval"))
        if source is None:
            continue
        thumbnails = []
        for rel in paths:
            sample = _sample(source, rel)
            uri = thumbnail_uri(sample) if sample is not None else None
            if uri is not None:
                thumbnails.append({"path": rel, "data_uri": uri})
            if len(thumbnails) == MAX_THUMBNAILS:
                break
        details["thumbnails"] = thumbnails


def _sample(source: Dataset | Path, sample_id: str) -> Sample | Path | None:
    """The sample a flagged id names: looked up in a Dataset (None if not there), or a path
    under a folder."""
    if not isinstance(source, Dataset):
        return Path(source) / sample_id
    if sample_id not in source.ids:
        return None
    return source.samples[source.ids.index(sample_id)]
