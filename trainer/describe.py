"""`trainer describe`: a checkpoint's metadata (qa.models.describe) as a table or JSON."""

import json

from rich.console import Console
from rich.table import Table

from qa.models import describe


def print_description(path: str, as_json: bool = False, console: Console | None = None) -> None:
    """Print what a checkpoint says about itself: architecture, classes, preprocessing,
    provenance. Large entries (config, versions) are shown as compact JSON."""
    info = describe(path)
    console = console or Console()
    if as_json:
        console.print_json(json.dumps(info, default=str))
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in info.items():
        if key == "provenance":
            for sub, item in value.items():
                table.add_row(f"provenance.{sub}", _text(item))
        else:
            table.add_row(key, _text(value))
    console.print(table)


def _text(value) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)
