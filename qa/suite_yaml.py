"""Reading a suite's YAML with the line of every key (qa.suite), bounded against hostile files.

YAML is composed into nodes first, so every key keeps the line it was written on
(qa.suite_errors maps pydantic's error locations back onto those lines). Alias bombs, deep nesting, oversized
files and non-finite numbers are refused or collected as problems, each with its line.
"""

import math
import re
from pathlib import Path

import yaml

from qa.errors import InputError
from qa.suite_errors import Problem, dotted, first_line, found

MAX_SUITE_BYTES = 256 << 10  # parsing is pure Python: this much takes about a second
MAX_DEPTH = 64
MAX_NODES = 100_000


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads exponent floats without a dot (1e-3) as numbers, as YAML 1.2, and
    bounds the work a hostile file can ask for before anything is built from it.

    Every node's size and depth with aliases expanded are measured while composing, from its
    children's (memoised per node), so an alias bomb of a few hundred bytes is refused in time
    linear in the file instead of after gigabytes; a recursive alias is refused outright.
    """

    def __init__(self, text: str):
        super().__init__(text)
        self.depth = 0
        self.expanded: dict[int, tuple[int, int]] = {}  # id(node): (nodes, depth), aliases expanded

    def compose_node(self, parent, index):
        """Compose one node, refusing deep nesting, recursive aliases and too many nodes."""
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if id(node) not in self.expanded:  # the anchor is still being composed
                raise yaml.composer.ComposerError(
                    None, None, "found a recursive alias (a node inside itself)", mark
                )
            return node
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _too_deep(self.peek_event().start_mark)
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        self._measure(node)
        return node

    def _measure(self, node) -> None:
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        sizes = [self.expanded[id(child)] for child in children]
        nodes = 1 + sum(n for n, _ in sizes)
        depth = 1 + max((d for _, d in sizes), default=0)
        if nodes > MAX_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"more than {MAX_NODES} values once aliases are expanded",
                node.start_mark,
            )
        if depth > MAX_DEPTH:
            raise _too_deep(node.start_mark)
        self.expanded[id(node)] = (nodes, depth)

    def construct_object(self, node, deep=False):
        """Construct one node; a scalar its tag cannot hold (2024-13-45) is a marked error."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            tag = node.tag.rsplit(":", 1)[-1]
            reason = str(exc).split(";")[0]
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"cannot read {found(node.value)} as !!{tag} ({reason})",
                node.start_mark,
            ) from None


def _too_deep(mark) -> yaml.YAMLError:
    return yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(path: str | Path) -> tuple[object, dict[tuple, int]]:
    """Parse one YAML document: (data, {key path: 1-based line}). Raises InputError, for the
    first problem `parse_yaml` finds."""
    data, lines, found = parse_yaml(path)
    if found:
        raise InputError(first_line(path, found, lines))
    return data, lines


def parse_yaml(path: str | Path) -> tuple[object, dict[tuple, int], list[Problem]]:
    """Parse one YAML document: (data, {key path: 1-based line}, problems).

    Refused as bad input (InputError), never a crash: a file over MAX_SUITE_BYTES, characters
    YAML forbids (NUL), invalid YAML, nesting deeper than MAX_DEPTH, more than MAX_NODES values
    with aliases expanded. A document that parses still has a problem for each duplicate key
    (YAML keeps the last) and each non-finite number (.inf, .nan), which no gate could compare
    against: the caller reports them with its own, so one run shows them all.
    """
    text = _read_text(path)
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise InputError(
            f"{path}:{line}: invalid YAML: unacceptable character #x{exc.character:04x}: "
            f"{exc.reason}"
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise InputError(
                f"{path}:1: expected a mapping with name, data and checks, found nothing"
            )
        lines: dict[tuple, int] = {}
        found: list[Problem] = []
        _record(node, (), lines, loader, path, found)
        return loader.construct_document(node), lines, found
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise InputError(
            f"{path}:{mark.line + 1}: invalid YAML: {exc.problem or exc.context}"
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def check_lines(path: str | Path) -> list[int]:
    """The 1-based line of each entry of the suite's `checks:` list, in order: where a report
    (GitHub annotations, qa.report.annotations) points at a check. [] when there is no list.
    Raises InputError as read_yaml does."""
    data, lines = read_yaml(path)
    checks = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(checks, list):
        return []
    return [lines[("checks", i)] for i in range(len(checks))]


def _read_text(path: str | Path) -> str:
    """The suite file's text, read no further than MAX_SUITE_BYTES (suites are a few KiB)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SUITE_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: suite file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the suite ({exc.strerror})") from None
    if len(data) > MAX_SUITE_BYTES:
        raise InputError(
            f"{path}: expected a suite of at most {MAX_SUITE_BYTES >> 10} KiB, found a larger file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: expected a UTF-8 text file, found binary data") from None


def _record(node, at: tuple, lines: dict, loader, path, found: list) -> None:
    """Record the line of every key and item below `node`, and in `found` each duplicate key
    and non-finite number; refuse a key that is not plain text. Aliases are followed: _Loader
    has bounded their expansion."""
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:float":
        if not math.isfinite(loader.construct_object(node)):
            found.append((at, f"expected a finite number, found {node.value}"))
    elif isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise InputError(
                    f"{path}:{line}: {dotted(at)}: expected a plain key, found a {key_node.id}"
                )
            if key_node.style is None:  # keys are text: `true:` is the key 'true', not a bool
                key_node.tag = "tag:yaml.org,2002:str"
            key = loader.construct_object(key_node)
            lines[(*at, key)] = line
            if key in seen:
                found.append(((*at, key), "duplicate key (YAML would keep only the last)"))
            seen.add(key)
            _record(value_node, (*at, key), lines, loader, path, found)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record(item, (*at, i), lines, loader, path, found)
