"""`qa report`: every format re-rendered from one saved result.json, agreeing on every status."""

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from helpers import sample_doc

from qa.cli import main
from qa.report import json_report


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json_report.render(sample_doc()))
    return path


def _junit(text: str) -> dict[str, str]:
    tags = {"failure": "fail", "error": "error", "skipped": "skip"}
    statuses = {}
    for case in ET.fromstring(text).iter("testcase"):
        child = next(iter(case))
        if child.tag == "skipped" and child.get("message").startswith("warn: "):
            statuses[case.get("name")] = "warn"  # a warning is shown as skipped (qa.report.junit)
            continue
        statuses[case.get("name")] = tags.get(child.tag) or child.text.split(":")[0]
    return statuses


def _markdown(text: str) -> dict[str, str]:
    rows = [line.split("|") for line in text.splitlines() if re.match(r"\| \S+ \w+ \|", line)]
    return {cells[2].strip(): cells[1].split()[-1] for cells in rows}


class _Rows(HTMLParser):
    """Collects (data-status, link text) of every check row of the HTML report."""

    def __init__(self):
        super().__init__()
        self.rows, self._status, self._in_link = {}, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and attrs.get("class") == "check-row":
            self._status = attrs["data-status"]
        self._in_link = tag == "a" and self._status is not None

    def handle_data(self, data):
        if self._in_link:
            self.rows[data.strip()] = self._status
            self._status, self._in_link = None, False


def _html(text: str) -> dict[str, str]:
    parser = _Rows()
    parser.feed(text)
    return parser.rows


def _terminal(text: str) -> dict[str, str]:
    cells = [line.split("│") for line in text.splitlines() if line.startswith("│")]
    return {
        c[2].strip().removesuffix(" (warn)"): c[1].strip().lower() for c in cells if c[1].strip()
    }


PARSERS = {"junit": _junit, "md": _markdown, "html": _html, "terminal": _terminal}


@pytest.mark.parametrize("fmt", PARSERS)
def test_every_format_rerendered_from_a_saved_result_agrees_on_every_status(
    saved, tmp_path, capsys, fmt
):
    expected = {c["name"]: c["status"] for c in json.loads(saved.read_text())["checks"]}
    assert set(expected.values()) == {"pass", "fail", "warn", "error", "skip"}
    out = tmp_path / f"report.{fmt}"
    assert main(["report", str(saved), "--format", fmt, "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert PARSERS[fmt](out.read_text()) == expected
    assert main(["report", str(saved), "--format", fmt]) == 0  # stdout by default
    assert capsys.readouterr().out == out.read_text() or fmt == "terminal"


BAD = {
    "missing": None,
    "not json": "{oops",
    "foreign json": '{"name": "left-pad", "version": "1.3.0"}',
    "a list": "[1, 2]",
    "future schema": '{"schema_version": 3}',
    "incomplete": '{"schema_version": 1, "suite": {}}',
}


@pytest.mark.parametrize("case", BAD)
def test_an_unusable_result_is_exit_2_with_one_line(tmp_path, capsys, case):
    path = tmp_path / "result.json"
    if BAD[case] is not None:
        path.write_text(BAD[case])
    assert main(["report", str(path), "--format", "md"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {path}: ") and captured.err.count("\n") == 1
    assert captured.out == ""


def _mutated(change):
    doc = sample_doc()
    change(doc)
    return json.dumps(doc)


MALFORMED = {  # (document text, format, what the one line names): each crashed the renderer
    "nested too deeply": ("[" * 100_000, "md", "not a qa result: JSON nested too deeply"),
    "version true": (
        _mutated(lambda d: d.update(schema_version=True)),
        "md",
        "schema_version: expected one of (1, 2) (what this qa reads), found true",
    ),
    "summary lacks a count": (
        _mutated(lambda d: d["summary"].pop("skip")),
        "md",
        "summary.skip: missing required key",
    ),
    "suite name a number": (
        _mutated(lambda d: d["suite"].update(name=5)),
        "junit",
        "suite.name: expected a string, found 5",
    ),
    "duration null": (
        _mutated(lambda d: d.update(duration=None)),
        "md",
        "duration: expected a number, found nothing",
    ),
    "metrics a list": (
        _mutated(lambda d: d["checks"][0].update(metrics=[1])),
        "md",
        "checks[0].metrics: expected a mapping, found a list",
    ),
    "checkpoint null": (
        _mutated(lambda d: d.update(checkpoint=None)),
        "html",
        "checkpoint: expected a mapping, found nothing",
    ),
    "details the figures cannot draw": (
        _mutated(lambda d: d["checks"][2].update(details={"reliability": "high"})),
        "html",
        "cannot be rendered as a qa result (",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_result_is_exit_2_with_one_line_naming_the_key(tmp_path, capsys, case):
    text, fmt, expected = MALFORMED[case]
    path = tmp_path / "result.json"
    path.write_text(text)
    assert main(["report", str(path), "--format", fmt]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {path}: {expected}"), captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_a_schema_version_1_result_is_still_read(saved, capsys):
    doc = json.loads(saved.read_text())
    doc["schema_version"] = 1
    del doc["error"]
    saved.write_text(json.dumps(doc))
    assert main(["report", str(saved), "--format", "md"]) == 0
    assert "FAIL" in capsys.readouterr().out


def test_report_out_a_folder_is_exit_2_with_one_line(saved, tmp_path, capsys):
    assert main(["report", str(saved), "--format", "md", "--out", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"error: --out {tmp_path}: expected a file name, found a folder\n"
    )


def test_a_check_with_an_unknown_status_is_refused(tmp_path, capsys):
    doc = sample_doc()
    doc["checks"][1]["status"] = "maybe"
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    assert main(["report", str(path)]) == 2
    assert (
        "checks[1].status: expected 'pass', 'fail', 'warn', 'error' or 'skip', found 'maybe'"
        in capsys.readouterr().err
    )


def test_report_never_imports_torch(saved):
    code = (
        "import sys\nfrom qa.cli import main\n"
        f"code = main(['report', {str(saved)!r}, '--format', 'html'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "data-status" in done.stdout


def test_the_report_layer_reads_result_types_and_never_imports_the_run():
    """qa.report and its renderers need qa.result only: not the runner, the suite, the engine
    or the application (nor torch), so `qa report` re-renders a result and runs nothing."""
    code = (
        "import sys\nimport qa.report, qa.report.json_report, qa.report.terminal\n"
        "run = {'qa.runner', 'qa.suite', 'qa.engine', 'qa.application', 'torch'}\n"
        "print(sorted(run & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_format_renders_through_one_registry(tmp_path, capsys):
    from qa.report import FORMATS, REPORT_FILES

    path = tmp_path / "result.json"
    path.write_text(json_report.render(sample_doc()))
    for name, fmt in FORMATS.items():
        assert main(["report", str(path), "--format", name, "--out", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_text() == fmt.module.render(sample_doc())
    assert set(REPORT_FILES.values()) == {"result.json", "junit.xml", "result.html", "summary.md"}
