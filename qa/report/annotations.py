"""GitHub workflow annotations: each failed, errored or warned check at its line of the suite.

`qa run` prints these on stdout when `$GITHUB_ACTIONS` is "true" (qa.cli), and GitHub shows
them on the job page and beside the suite file in the pull request's diff:

    ::error file=suites/release.yaml,line=33,title=top-1 accuracy::top-1 accuracy lower 95% ...
    ::warning file=suites/release.yaml,line=61,title=low contrast::corruption accuracy ...

A failed check is an `error`, one that could not be evaluated an `error` whose message starts
"not evaluated: ", a warned one a `warning` (an `error` under --strict, where it blocks the
run, its message starting "warn (blocks with --strict): "). A run that stopped on an error
(the error document) is one `error` at the FILE:LINE its message names, if any. Escaping follows GitHub's runner (toolkit
command.ts): in the message % CR LF become %25 %0D %0A; in a property also : and , become
%3A and %2C. Other control characters and lone surrogates are written as visible escapes
(fmt.printable), as in every report.
"""

import os
import re
from pathlib import Path

from qa.errors import InputError
from qa.report.fmt import printable
from qa.suite_yaml import check_lines

LEVELS = {"fail": "error", "error": "error", "warn": "warning"}
_WHERE = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+): ")


def render(doc: dict, lines: list[int] | None) -> str:
    """The annotations of a result document, one line each ('' when every check passed).

    `lines` holds the suite-file line of each check, in suite order (qa.suite_yaml.
    check_lines); an annotation goes without a line when they are missing or do not match.
    """
    if doc.get("error"):
        message = doc["error"]["message"]
        where = _WHERE.match(message)
        props = {"file": where["file"], "line": where["line"]} if where else {}
        return _command("error", {**props, "title": "qa run"}, message)
    checks, path = doc["checks"], doc["suite"]["path"]
    usable = lines is not None and len(lines) == len(checks)
    out = []
    for i, check in enumerate(checks):
        level = LEVELS.get(check["status"])
        if level is None:
            continue
        message = check["message"]
        if check["status"] == "error":
            message = f"not evaluated: {message}"
        elif check["status"] == "warn" and doc.get("strict"):
            level, message = "error", f"warn (blocks with --strict): {message}"
        props = {"file": path, "line": str(lines[i]) if usable else None, "title": check["name"]}
        out.append(_command(level, props, message))
    return "".join(out)


def for_github(doc: dict) -> str:
    """render(doc) with the lines read from the suite file the document names; the path is
    made relative to the working directory (the checkout, in Actions) when it lies below it."""
    path = doc["suite"]["path"]
    try:
        lines = check_lines(path)
    except InputError:  # the suite is gone or broken: annotate without lines
        lines = None
    here = Path.cwd()
    if Path(path).is_absolute() and Path(path).is_relative_to(here):
        doc = {**doc, "suite": {**doc["suite"], "path": os.path.relpath(path, here)}}
    return render(doc, lines)


def _command(level: str, props: dict, message: str) -> str:
    shown = ",".join(f"{k}={_escape_property(v)}" for k, v in props.items() if v is not None)
    return f"::{level}{' ' if shown else ''}{shown}::{_escape_data(message)}\n"


def _escape_data(text: str) -> str:
    """GitHub's escapes, then fmt.printable: a terminal escape sequence in a folder name must
    not colour the log, and a lone surrogate must not make stdout fail."""
    return printable(str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
