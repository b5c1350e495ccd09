"""One-line error messages for the suite loader (qa.suite), at the line of the key at fault.

qa.suite_yaml reads the YAML with the line of every key; pydantic's error locations are
mapped back onto those lines here. Messages follow pre-commit's clientlib:
`FILE:LINE: KEY.PATH: expected ..., found ...`.
"""

import difflib
import inspect
import re
import typing

from pydantic import BaseModel, ValidationError

from qa.errors import InputError

MISSING = object()
Problem = tuple[tuple, str]  # (key path, message)


def dotted(at: tuple) -> str:
    """A key path as written in messages: checks[3].min."""
    text = ""
    for key in at:
        text += f"[{key}]" if isinstance(key, int) else f".{key}" if text else str(key)
    return text or "(top level)"


def found(value) -> str:
    """A value as the `found ...` of a message."""
    if value is MISSING or value is None:
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class SuiteError(InputError):
    """A suite with problems. `lines` holds every one, `FILE:LINE: KEY.PATH: message`, in line
    order (what `qa validate` prints); the message is the one to fix first and how many more
    there are, so a run that stops on it still says where to see them all."""

    def __init__(self, path, found: list[Problem], lines: dict[tuple, int]):
        kept = _without_echoes(found)
        self.lines = [
            _format(path, at, message, lines) for at, message in _in_line_order(kept, lines)
        ]
        more = len(self.lines) - 1
        tail = f" (and {more} more: qa validate {path})" if more else ""
        super().__init__(first_line(path, kept, lines) + tail)


def first_line(path, problems: list[Problem], lines: dict[tuple, int]) -> str:
    """The message of the problem written earliest in the file, as FILE:LINE: PATH: MESSAGE.

    Unknown keys and kinds come first: a misspelt key also makes the key it meant missing.
    """
    at, message = min(
        problems, key=lambda p: (not p[1].startswith("unknown "), line_of(p[0], lines))
    )
    return _format(path, at, message, lines)


def line_of(at: tuple, lines: dict[tuple, int]) -> int:
    """The line of key path `at`, or of the nearest key above it that has one (1 if none)."""
    while at not in lines and at:
        at = at[:-1]
    return lines.get(at, 1)


def _format(path, at: tuple, message: str, lines: dict[tuple, int]) -> str:
    where = f"{dotted(at)}: " if at else ""
    return f"{path}:{line_of(at, lines)}: {where}{message}"


def _in_line_order(found: list[Problem], lines: dict[tuple, int]) -> list[Problem]:
    """By line; on one line, unknown keys before what they cause, then as found."""
    return sorted(found, key=lambda p: (line_of(p[0], lines), not p[1].startswith("unknown ")))


def _without_echoes(found: list[Problem]) -> list[Problem]:
    """Drop "missing required" for a key that an unknown key beside it was meant to be (`mni:`
    for `min:` is one typo, said once: the unknown key's message names the key it meant)."""
    meant = set()
    for at, message in found:
        near = re.search(r"; did you mean (\S+)\?", message)
        if message.startswith("unknown ") and near and at:
            meant.add((*at[:-1], near.group(1)))
    return [(at, m) for at, m in found if not (m.startswith("missing required") and at in meant)]


def problems(
    exc: ValidationError,
    model: type[BaseModel],
    prefix: tuple,
    data,
    kind: str | None = None,
    ignore: tuple[str, ...] = (),
) -> list[Problem]:
    """Turn pydantic's errors for `model` (validated at `prefix` in `data`) into problems,
    leaving out those under the top-level keys `ignore` (validated elsewhere).

    Errors inside a union are grouped: the member that got deepest into the value explains
    the error; members that failed at the same place are joined ("a list or 'all'").
    """
    groups: dict = {}
    for n, error in enumerate(exc.errors()):
        if error["loc"][:1] and error["loc"][0] in ignore:
            continue
        at, union_at = _clean((*prefix, *error["loc"]), data, error["type"])
        groups.setdefault(union_at if union_at is not None else n, []).append((at, error))
    out = []
    for members in groups.values():
        depth = max(len(at) for at, _ in members)
        deepest = [(at, e) for at, e in members if len(at) == depth]
        at, error = deepest[0]
        wanted = [_expected(e) for _, e in deepest]
        if len(deepest) > 1 and all(wanted):
            message = (
                f"expected {' or '.join(dict.fromkeys(wanted))}, found {found(error['input'])}"
            )
        else:
            message = _message(error, model, at[len(prefix) :], kind)
        out.append((at, message))
    return out


def _clean(loc: tuple, data, error_type: str) -> tuple[tuple, tuple | None]:
    """Keep the parts of a pydantic location that are keys of the data (drop union tags)."""
    at, value, union_at = [], data, None
    for i, part in enumerate(loc):
        if (isinstance(value, dict) and part in value) or (
            isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        ):
            value = value[part]
        elif i == len(loc) - 1 and error_type == "missing":
            value = MISSING
        else:
            union_at = tuple(at) if union_at is None else union_at
            continue
        at.append(part)
    return tuple(at), union_at


_TYPES = {
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {
    "greater_than_equal": "a number >= {ge}",
    "greater_than": "a number > {gt}",
    "less_than_equal": "a number <= {le}",
    "less_than": "a number < {lt}",
    "too_short": "at least {min_length} item(s)",
    "too_long": "at most {max_length} item(s)",
    "string_too_short": "at least {min_length} character(s)",
    "literal_error": "{expected}",
}


def _expected(error: dict) -> str | None:
    if error["type"] in _TYPES:
        return _TYPES[error["type"]]
    if error["type"] in _BOUNDS:
        ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in error.get("ctx", {}).items()}
        return _BOUNDS[error["type"]].format(**ctx)
    return None


def _message(error: dict, model: type[BaseModel], at: tuple, kind: str | None) -> str:
    kind_of = error["type"]
    if kind_of == "missing":
        return "missing required " + ("parameter" if kind and len(at) == 1 else "key")
    if kind_of == "extra_forbidden":
        return _unknown_key(at[-1], _model_at(model, at[:-1]), kind if len(at) == 1 else None)
    wanted = _expected(error)
    if wanted:
        return f"expected {wanted}, found {found(error['input'])}"
    text = error["msg"].removeprefix("Value error, ")
    if kind_of in ("value_error", "assertion_error"):
        return text
    return f"{text[0].lower()}{text[1:]}, found {found(error['input'])}"


def _unknown_key(key, model: type[BaseModel] | None, kind: str | None) -> str:
    valid = [f.alias or name for name, f in model.model_fields.items()] if model else []
    what = f"parameter {key!r} for {kind}" if kind else f"key {key!r}"
    near = difflib.get_close_matches(str(key), valid, n=1)
    hint = f"; did you mean {near[0]}?" if near else ""
    return f"unknown {what}{hint} (valid: {', '.join(valid) or 'none'})"


def _model_at(model: type[BaseModel], at: tuple) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at key path `at` below `model`."""
    for part in at:
        if isinstance(part, int):
            continue
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        if part not in fields:
            return None
        inner = _models_in(fields[part].annotation)
        if not inner:
            return None
        model = inner[0]
    return model


def _models_in(annotation) -> list[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
