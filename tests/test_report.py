"""Reports render a finished result: JSON (versioned, redoable), terminal table, JUnit XML.

Every renderer takes the JSON document (`json_report.to_dict`), never a RunReport, so each
test here renders from `sample_doc()`; test_report_formats.py re-renders them from a saved file.
"""

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import sample_doc, sample_report
from rich.console import Console

from qa.checks import compare
from qa.report import (
    ReportWriteError,
    fmt,
    json_report,
    junit,
    markdown,
    terminal,
    write_reports,
)


def test_json_is_versioned_strict_and_lets_a_reader_redo_each_decision():
    data = json.loads(json_report.render(sample_doc()))
    assert data["schema_version"] == 2 and data["verdict"] == "fail" and data["exit_code"] == 1
    assert data["error"] is None  # a finished run
    assert data["suite"] == {"name": "release", "path": "suites/release.yaml"}
    assert data["summary"] == {"pass": 1, "fail": 1, "warn": 1, "error": 1, "skip": 1}
    assert set(data["checks"][0]) == {
        "name",
        "kind",
        "family",
        "severity",
        "status",
        "message",
        "metrics",
        "threshold",
        "details",
        "slice",
        "slices",
        "seconds",
        "effect",
    }
    for check in data["checks"]:
        t = check["threshold"]
        if t is None:
            continue
        passed = compare(check["metrics"][t["metric"]], t["op"], t["value"])
        assert passed == (check["status"] == "pass"), check["name"]
    assert data["checks"][0]["metrics"]["k"] == 260  # numpy scalars become numbers
    assert data["checks"][1]["details"]["classes"][0]["recall"] == pytest.approx(0.8)
    assert data["checks"][1]["slice"] == {"column": "cam", "equals": "A"}
    assert data["checks"][3]["metrics"]["macro_f1"] is None  # NaN is not JSON
    assert data["baseline"] is None


GOLD = """\
qa release: candidate.pt
┏━━━━━━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ status ┃ check            ┃ estimate              ┃ decision      ┃ message                                          ┃
┡━━━━━━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ FAIL   │ per_class_recall │                       │ 0.62 >= 0.7   │ recall of worst class 8 lower 95% bound 0.6200   │
│        │                  │                       │               │ misses >= 0.7                                    │
│ ERROR  │ macro_f1         │                       │ —             │ macro-F1 is nan: cannot be compared              │
│ WARN   │ ece (warn)       │                       │ 0.08 <= 0.05  │ ECE 0.0800 misses <= 0.05                        │
│ PASS   │ top1_accuracy    │ 0.963 [0.9412, 0.978] │ 0.9412 >= 0.9 │ top-1 accuracy lower 95% bound 0.9412 meets >=   │
│        │                  │                       │               │ 0.9 (260/270)                                    │
│ SKIP   │ mcnemar          │                       │ —             │ no baseline given                                │
└────────┴──────────────────┴───────────────────────┴───────────────┴──────────────────────────────────────────────────┘
FAIL: a gate failed (1 pass, 1 fail, 1 warn, 1 error, 1 skip) - exit 1 in 2.0s
"""


def test_terminal_table_shows_status_numbers_and_the_verdict():
    out = io.StringIO()
    terminal.show(sample_doc(), Console(file=out, width=120, color_system=None))
    assert "".join(line.rstrip() + "\n" for line in out.getvalue().splitlines()) == GOLD


def test_terminal_colours_follow_status():
    out = io.StringIO()
    terminal.show(
        sample_doc(), Console(file=out, width=120, color_system="standard", force_terminal=True)
    )
    text = out.getvalue()
    assert "\x1b[32mPASS" in text and "\x1b[31mFAIL" in text
    assert "\x1b[33mWARN" in text and "\x1b[35mERROR" in text


def test_junit_has_one_testcase_per_check_by_family():
    root = ET.fromstring(junit.render(sample_doc()))
    assert root.tag == "testsuite" and root.get("name") == "release"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "5",
        "1",
        "1",
        "2",  # the skip and the warn (qa.report.junit)
    )
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["ece"].get("classname") == "calibration"
    failure = cases["per_class_recall"].find("failure")
    assert failure.get("message").startswith("recall of worst class 8")
    assert "recall_low = 0.62 (>= 0.7 required)" in failure.text
    assert cases["macro_f1"].find("error") is not None
    assert cases["mcnemar"].find("skipped").get("message") == "no baseline given"
    assert cases["top1_accuracy"].find("failure") is None
    assert "warn: ECE" in cases["ece"].find("system-out").text


FILES = ["junit.xml", "result.html", "result.json", "summary.md"]


def test_reports_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    out = tmp_path / "out"
    paths = write_reports(sample_report(), out)
    assert sorted(p.name for p in out.iterdir()) == FILES
    before = {k: p.read_text() for k, p in paths.items()}
    changed = sample_report()
    changed.verdict = "pass"

    def broken(doc):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(markdown, "render", broken)  # the last file rendered
    with pytest.raises(RuntimeError):
        write_reports(changed, out)
    assert {k: p.read_text() for k, p in paths.items()} == before  # nothing rewritten
    monkeypatch.undo()

    original, written = Path.write_text, []

    def third_write_fails(self, text, encoding=None):
        if len(written) == 2:  # half of the third file, then the disk is full
            original(self, text[: len(text) // 2], encoding=encoding)
            raise OSError("disk full")
        written.append(self)
        return original(self, text, encoding=encoding)

    monkeypatch.setattr("pathlib.Path.write_text", third_write_fails)
    with pytest.raises(ReportWriteError, match="disk full"):
        write_reports(changed, out)
    monkeypatch.undo()
    assert {k: p.read_text() for k, p in paths.items()} == before  # not even the first two
    assert sorted(p.name for p in out.iterdir()) == FILES  # no temporary file left behind


def test_markdown_names_the_failing_checks_first():
    text = markdown.render(sample_doc())
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert [row.split("|")[1].split()[-1] for row in rows[1:]] == [
        "fail",
        "error",
        "warn",
        "pass",
        "skip",
    ]
    assert "| per_class_recall |  | 0.62 >= 0.7 | recall of worst class 8" in rows[1]
    assert text.startswith("### ✗ qa: release — **FAIL**")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.962963, "0.963"),
        (0.05, "0.05"),
        (260, "260"),
        (None, "n/a"),
        (float("nan"), "n/a"),
        (True, "True"),
        ([0.5, 1], "0.5, 1"),
        (list(range(9)), "[9 values]"),
        ("cam", "cam"),
    ],
)
def test_numbers_read_the_same_in_every_report(value, text):
    assert fmt.number(value) == text


_T = {"metric": "a", "op": ">=", "value": 0.9}


def test_decision_is_value_op_threshold_or_a_dash():
    assert fmt.decision({"metrics": {"a": 0.81234}, "threshold": _T}) == "0.8123 >= 0.9"
    assert fmt.decision({"metrics": {"a": None}, "threshold": _T}) == "n/a >= 0.9"
    assert fmt.decision({"metrics": {}, "threshold": None}) == "—"


def _failing_replace(monkeypatch, fail_at: int, also_fail=lambda src: False):
    """Make the `fail_at`-th os.replace (1-based) raise, and any whose source `also_fail`s."""
    import os

    original, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == fail_at or also_fail(str(src)):
            raise OSError(28, "No space left on device")
        return original(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return calls


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_a_failed_rename_leaves_every_file_of_the_previous_run(tmp_path, monkeypatch, fail_at):
    out = tmp_path / "out"
    paths = write_reports(sample_report(), out)
    before = {k: p.read_text() for k, p in paths.items()}
    changed = sample_report()
    changed.verdict, changed.exit_code = "pass", 0
    _failing_replace(monkeypatch, fail_at)
    with pytest.raises(ReportWriteError) as caught:
        write_reports(changed, out)
    assert {k: p.read_text() for k, p in paths.items()} == before  # all the old run's
    assert "No space left on device" in str(caught.value)
    assert "holds the previous reports, if any, unchanged" in str(caught.value)
    assert sorted(p.name for p in out.iterdir()) == FILES  # no temporary or backup left
    monkeypatch.undo()
    write_reports(changed, out)  # and the next write replaces the whole set
    assert json.loads(paths["json"].read_text())["verdict"] == "pass"
    assert "PASS" in paths["md"].read_text()


def test_a_failed_rename_into_an_empty_folder_leaves_it_empty(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not ours")
    _failing_replace(monkeypatch, 3)
    with pytest.raises(ReportWriteError):
        write_reports(sample_report(), out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # the two renamed files removed


def test_without_hard_links_the_previous_files_are_copied_and_restored(tmp_path, monkeypatch):
    import os

    out = tmp_path / "out"
    paths = write_reports(sample_report(), out)
    before = {k: p.read_text() for k, p in paths.items()}

    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    _failing_replace(monkeypatch, 4)
    changed = sample_report()
    changed.verdict, changed.exit_code = "pass", 0
    with pytest.raises(ReportWriteError):
        write_reports(changed, out)
    assert {k: p.read_text() for k, p in paths.items()} == before
    assert sorted(p.name for p in out.iterdir()) == FILES


def test_when_the_previous_files_cannot_be_put_back_the_error_names_the_new_ones(
    tmp_path, monkeypatch
):
    out = tmp_path / "out"
    write_reports(sample_report(), out)
    _failing_replace(monkeypatch, 3, also_fail=lambda src: src.endswith(".previous"))
    with pytest.raises(ReportWriteError) as caught:
        write_reports(sample_report(), out)
    message = str(caught.value)
    assert "\n" not in message
    assert "result.json, junit.xml (this run's) could not be put back; the other" in message
