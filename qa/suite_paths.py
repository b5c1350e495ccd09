"""Where the paths a suite names point, and whether anything is there (`qa validate`).

Data roots, manifests, manifest roots, shard patterns and the baseline written in a suite
resolve against the folder of the suite file, as docker-compose and pytest resolve theirs, so
a suite means the same files from any current folder; absolute paths stay as written. The
folder is joined as given, neither made absolute nor normalised: `suites/../data` is not
shortened to `data`, which would be another folder when `suites` is a symbolic link.
"""

import os
from pathlib import Path

from qa import shards

DATA_SPLITS = ("eval", "train", "calibration")
# each path key of a data source, and what must be there
WANTED = {
    "path": "a folder of class folders",
    "manifest": "a manifest file (CSV)",
    "root": "a folder",
    "shards": "tar shards",
}


def resolve(suite_path: str | Path, value: str) -> str:
    """`value`, a path written in the suite at `suite_path`, as the suite means it."""
    if os.path.isabs(value):
        return value
    return str(Path(suite_path).parent / value)


def resolve_paths(suite, suite_path: str | Path):
    """A copy of a validated Suite whose data and baseline paths are resolved (`resolve`)."""
    splits = {
        name: spec.model_copy(
            update={k: resolve(suite_path, getattr(spec, k)) for k in WANTED if getattr(spec, k)}
        )
        for name, spec in suite.data.splits().items()
    }
    baseline = suite.baseline and resolve(suite_path, suite.baseline)
    return suite.model_copy(
        update={"data": suite.data.model_copy(update=splits), "baseline": baseline}
    )


def missing_paths(raw: dict, suite_path: str | Path) -> list[tuple[tuple, str]]:
    """A problem (key path, message) for each data path or baseline in the parsed suite `raw`
    with nothing usable where it points. Values of the wrong type are the schema's to report."""
    out = []
    data = raw.get("data")
    for split in DATA_SPLITS if isinstance(data, dict) else ():
        source = data.get(split)
        if isinstance(source, str):  # the folder shorthand: `eval: DIR`
            entries = [(("data", split), "path", source)]
        elif isinstance(source, dict):
            entries = [(("data", split, k), k, v) for k, v in source.items() if k in WANTED]
        else:
            continue
        for at, key, value in entries:
            if isinstance(value, str) and value:
                problem = _absent(key, resolve(suite_path, value))
                if problem:
                    out.append((at, problem))
    baseline = raw.get("baseline")
    if isinstance(baseline, str) and baseline:
        where = resolve(suite_path, baseline)
        if not os.path.isfile(where):
            out.append((("baseline",), f"expected a checkpoint file, found {_what(where)}"))
    return out


def _absent(key: str, where: str) -> str | None:
    """Why nothing usable is at `where` for data key `key`, or None."""
    if key == "shards":
        try:
            names = shards.expand(where)
        except ValueError:  # a malformed pattern: already a schema problem
            return None
        missing = [n for n in names if not os.path.isfile(n)]
        if not missing:
            return None
        others = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        return f"expected {len(names)} tar shard(s), found {_what(missing[0])}{others}"
    usable = os.path.isfile(where) if key == "manifest" else os.path.isdir(where)
    return None if usable else f"expected {WANTED[key]}, found {_what(where)}"


def _what(where: str) -> str:
    """What is at `where`, for a message: nothing, a broken link, a file or a folder."""
    if os.path.isdir(where):
        return f"a folder at {where}"
    if os.path.exists(where):
        return f"a file at {where}"
    if os.path.lexists(where):
        return f"a broken symbolic link at {where}"
    return f"nothing at {where}"
