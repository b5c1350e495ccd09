"""Tar shards in webdataset's layout, indexed without reading an image.

`data: {eval: {shards: "val-{000000..000049}.tar"}}` names uncompressed tar files; each
`{FIRST..LAST}` range expands to every number between, zero-padded as written. A shard holds
samples as members grouped by key, webdataset's rule: the member's name up to the first dot
of its base name (`n01/x.JPEG` has key `n01/x` and field `JPEG`). A sample is one image member
(a field in qa.data.IMAGE_EXTENSIONS, any case) and its label: `key.cls`, whose text is the
class name, or else `key.json` with `{"label": NAME}`. The label is always a class name, as an
ImageFolder's folder name is: `.cls` holding `7` is the class "7", which matches a model whose
classes are "0".."N-1". Other fields (`key.txt`, ...) and hidden members are ignored.

A sample's id is its image member's name, so shards made by tarring an ImageFolder's class
folders (with a `.cls` beside each image) give the ImageFolder's ids, labels and fingerprint:
samples are ordered as qa.data.scan_image_folder orders them, by class, then by name.

Only member headers are read here (and the small label members), with the standard library's
tarfile; the image bytes are read later, by offset (qa.data.read_bytes).
"""

import json
import re
import tarfile
from itertools import product
from pathlib import Path, PurePosixPath

from qa.errors import InputError

RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
MAX_SHARDS = 100_000  # a typo such as {0..99999999} must not build a list of a billion names
LABEL_FIELDS = ("cls", "json")


def expand(pattern: str) -> list[str]:
    """The shard names `pattern` stands for, in order; ValueError for a malformed range.

    `{000..012}` gives 000, 001, ... 012: a number written with a leading zero pads every
    number to the longer width, as the shell's brace expansion does.
    """
    pieces = RANGE.split(pattern)
    literals, ranges = pieces[::3], list(zip(pieces[1::3], pieces[2::3], strict=True))
    for text in literals:
        if "{" in text or "}" in text:
            raise ValueError(
                f"expected ranges written {{FIRST..LAST}} (e.g. val-{{000000..000049}}.tar), "
                f"found {pattern!r}"
            )
    choices, total = [], 1
    for first, last in ranges:
        if int(first) > int(last):
            raise ValueError(f"expected FIRST <= LAST in {{{first}..{last}}}, found {pattern!r}")
        padded = (first.startswith("0") and len(first) > 1) or (
            last.startswith("0") and len(last) > 1
        )
        width = max(len(first), len(last)) if padded else 0
        choices.append([str(n).zfill(width) for n in range(int(first), int(last) + 1)])
        total *= len(choices[-1])
        if total > MAX_SHARDS:
            raise ValueError(f"expected at most {MAX_SHARDS} shards, found {pattern!r}")
    names = []
    for numbers in product(*choices):
        parts = [literals[0]]
        for number, literal in zip(numbers, literals[1:], strict=True):
            parts += [number, literal]
        names.append("".join(parts))
    return names


def scan_shards(
    pattern: str, image_extensions: tuple[str, ...]
) -> tuple[list[str], list[tuple[str, str, int, int, int]]]:
    """Index every shard of `pattern`: class names sorted, and per sample (shard path, id,
    data offset, data size, label index), ordered by class, then id.

    InputError, one line, for a malformed pattern, a missing or unreadable shard, a tar that
    is compressed, truncated or holds a member twice, a key with no image, two images or no
    label, an unusable label, a key found in two shards, or no samples at all.
    """
    try:
        paths = expand(pattern)
    except ValueError as exc:
        raise InputError(f"shards: {exc}") from None
    missing = [p for p in paths if not Path(p).exists()]
    if missing:  # before reading any: a missing shard is named however many come first
        raise InputError(
            f"{missing[0]}: shard not found ({len(missing)} of the {len(paths)} shards "
            f"of {pattern} missing)"
        )
    images = {e.lstrip(".").lower() for e in image_extensions}
    found: dict[str, tuple] = {}  # key -> (shard, image name, offset, size, label)
    for path in paths:
        for key, record in _scan_shard(path, images).items():
            if key in found:
                raise InputError(
                    f"{path}: sample {key!r} is also in {found[key][0]}; keys are unique "
                    "across shards"
                )
            found[key] = record
    if not found:
        raise InputError(f"{pattern}: expected image samples in the shards, found none")
    classes = sorted({r[4] for r in found.values()})
    index = {c: i for i, c in enumerate(classes)}
    rows = [(p, name, off, size, index[label]) for p, name, off, size, label in found.values()]
    rows.sort(key=lambda r: (r[4], PurePosixPath(r[1])))
    return classes, rows


def _scan_shard(path: str, images: set[str]) -> dict[str, tuple]:
    """One shard's samples by key: (shard, image member, data offset, data size, class name)."""
    members: dict[str, dict[str, tarfile.TarInfo]] = {}
    labels: dict[str, dict[str, bytes]] = {}
    try:
        size = Path(path).stat().st_size
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                name = info.name.removeprefix("./")
                folder, _, base = name.rpartition("/")
                stem, dot, field = base.partition(".")
                if not dot or not stem or base.startswith(".") or info.isdir():
                    continue
                field = field.lower()
                if field not in images and field not in LABEL_FIELDS:
                    continue
                where = f"{path}:{name}"
                if not info.isreg() or info.issparse():
                    raise InputError(f"{where}: expected a regular file member, found another kind")
                if info.offset_data + info.size > size:
                    raise InputError(f"{where}: the shard is truncated inside this member")
                fields = members.setdefault(f"{folder}/{stem}" if folder else stem, {})
                kind = "image" if field in images else field
                if kind in fields:
                    raise InputError(f"{where}: a second {kind} for {fields[kind].name}'s sample")
                fields[kind] = info
                if kind in LABEL_FIELDS:
                    labels.setdefault(name, {})[kind] = tar.extractfile(info).read()
            _check_end(tar, path)
    except FileNotFoundError:
        raise InputError(f"{path}: shard not found") from None
    except (OSError, tarfile.TarError) as exc:
        raise InputError(f"{path}: cannot read as an uncompressed tar file ({exc})") from None
    samples = {}
    for key, fields in members.items():
        image = fields.get("image")
        where = f"{path}:{(image or next(iter(fields.values()))).name}"
        if image is None:
            raise InputError(f"{where}: sample {key!r} has no image member")
        label = _label(where, {k: labels[v.name][k] for k, v in fields.items() if k != "image"})
        samples[key] = (path, image.name.removeprefix("./"), image.offset_data, image.size, label)
    return samples


def _check_end(tar: tarfile.TarFile, path: str) -> None:
    """InputError unless the archive ends with tar's end-of-archive block: tarfile stops
    silently at a file cut between two members, which would drop samples unnoticed."""
    tar.fileobj.seek(tar.offset)
    block = tar.fileobj.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE or any(block):
        raise InputError(f"{path}: the shard is truncated (no end-of-archive block)")


def _label(where: str, fields: dict[str, bytes]) -> str:
    """A sample's class name from its `cls` text or `json` label; InputError naming `where`."""
    if not fields:
        raise InputError(f"{where}: no label (expected a .cls or .json member beside it)")
    names = {}
    for field, raw in fields.items():
        try:
            text = raw.decode("utf-8-sig")
            value = json.loads(text).get("label") if field == "json" else text.strip()
        except (UnicodeDecodeError, ValueError, AttributeError):
            raise InputError(f"{where}: .{field}: expected UTF-8 text or a JSON object") from None
        if field == "json" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: .{field}: expected a class name, found {value!r}")
        names[field] = value.strip()
    if len(set(names.values())) > 1:
        raise InputError(f"{where}: .cls says {names['cls']!r} but .json says {names['json']!r}")
    return next(iter(names.values()))
