"""What `qa checks` shows: the registered check kinds as text, JSON or one kind with a suite
snippet. Torch-free, as `qa checks` must be; qa.cli prints what these functions return.
"""

import json
import types
import typing

import yaml
from pydantic import BaseModel
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from qa.checks import load_all
from qa.errors import InputError
from qa.suite import unknown_kind


def check_rows(kind: str | None = None) -> list[dict]:
    """`describe_checks`' rows, every kind or only `kind`; an unknown kind is
    InputError saying which kind was meant (or listing them)."""
    rows = describe_checks()
    if kind is None:
        return rows
    chosen = [row for row in rows if row["kind"] == kind]
    if not chosen:
        raise InputError(f"qa checks: {unknown_kind(kind, [row['kind'] for row in rows])}")
    return chosen


def as_json(rows: list[dict], one: bool) -> str:
    """The rows as indented JSON: a list, or the one row itself when a kind was asked for."""
    return json.dumps(rows[0] if one else rows, indent=2)


def renderables(rows: list[dict], examples: bool) -> list[RenderableType]:
    """Each kind as a block: name, family, summary, a grid of its parameters and, with
    `examples`, a suite snippet using it. Every text is literal: `list[str]` is a type, and a
    summary is not rich markup."""
    return [_block(row, examples) for row in rows]


def example_snippet(row: dict) -> str:
    """The kind's example as the YAML of a suite's `checks:` entry."""
    entry = [{"kind": row["kind"], **row["example"]}]
    return (
        "checks:\n"
        + _indent(yaml.safe_dump(entry, sort_keys=False, default_flow_style=None), "  ")
        + "\n"
    )


def _block(row: dict, examples: bool) -> RenderableType:
    needs = "  (compares against a baseline)" if row["needs_baseline"] else ""
    head = Text.assemble((row["kind"], "bold"), f"  {row['family']}{needs}")
    grid = Table.grid(padding=(0, 2))
    for column in ("parameter", "type = default", "meaning"):
        grid.add_column(column, no_wrap=column == "parameter")
    for p in row["parameters"]:
        shown = "required" if p["required"] else repr(p["default"])
        cells = (f"  {p['name']}", f"{p['type']} = {shown}", p["description"])
        grid.add_row(*map(Text, cells))
    parts = [head, Text(f"  {row['summary']}"), grid]
    if examples:
        parts += [Text("  example:"), Text(_indent(example_snippet(row), "    "))]
    return Group(*parts)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


def describe_checks() -> list[dict]:
    """Every registered check kind with its family, summary, example and parameters (`qa checks`)."""
    rows = []
    for kind, spec in sorted(load_all().items()):
        rows.append(
            {
                "kind": kind,
                "family": spec.family,
                "summary": spec.summary,
                "needs_baseline": spec.params.needs_baseline,
                "example": dict(getattr(spec.params, "example", {})),
                "parameters": describe_fields(spec.params),
            }
        )
    return rows


def type_name(annotation) -> str:
    """A readable name of a parameter's type: float, list[str], 'bound' | 'point'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def describe_fields(model: type[BaseModel]) -> list[dict]:
    """Each parameter of `model`: name, type, required, default, constraints, description."""
    rows = []
    for name, f in model.model_fields.items():
        bounds = []
        for m in f.metadata:
            for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                if getattr(m, attr, None) is not None:
                    bounds.append(f"{word} {getattr(m, attr)}")
            if getattr(m, "min_length", None) is not None:
                bounds.append(f"at least {m.min_length} item(s)")
        required = f.is_required()
        rows.append(
            {
                "name": f.alias or name,
                "type": type_name(f.annotation),
                "required": required,
                "default": None if required else f.get_default(call_default_factory=True),
                "constraints": ", ".join(bounds),
                "description": f.description or "",
            }
        )
    return rows
