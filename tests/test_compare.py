"""`qa diff` and `qa history`: saved result documents compared, in every format, end to end
through `qa.cli.main`; unreadable files are exit 2 with one line."""

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import sample_doc
from markdown_it import MarkdownIt

from qa.cli import main
from qa.report import compare, history, json_report

HOSTILE = "<script>alert(1)</script> | [bold]x[/]"


def _old() -> dict:
    """A passing run: top1 passes, per_class_recall fails, then checks that stay."""
    doc = sample_doc()
    doc["verdict"], doc["exit_code"] = "pass", 0
    return doc


def _new() -> dict:
    """The next run: top1 now fails (0.9412 -> 0.85), per_class_recall is fixed (0.62 ->
    0.75), ece is gone and a hostile-named check is added, failing."""
    doc = copy.deepcopy(sample_doc())
    doc["started"] = "2026-01-02T00:00:00.000+00:00"
    doc["checkpoint"]["sha256"] = "cd" * 32
    top1, recall, ece = doc["checks"][:3]
    top1.update(status="fail", message="top-1 accuracy lower bound 0.85 misses >= 0.9")
    top1["metrics"]["accuracy_low"] = 0.85
    recall.update(status="pass", message="recall fine")
    recall["metrics"]["recall_low"] = 0.75
    ece.update(name=HOSTILE, status="fail", severity="fail")
    return doc


def _save(path, doc: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_report.render(doc))
    return str(path)


@pytest.fixture
def pair(tmp_path):
    return _save(tmp_path / "old" / "result.json", _old()), _save(
        tmp_path / "new" / "result.json", _new()
    )


def _cells(text: str) -> list[list[str]]:
    """The cells of every row of the rendered Markdown table, read by a GFM parser."""

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.rows[-1].append(self.cell)
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Cells()
    parser.feed(MarkdownIt("commonmark").enable("table").render(text))
    return parser.rows


def test_diff_lists_new_failures_fixes_values_added_removed_and_the_verdict(pair, tmp_path):
    out = tmp_path / "diff.md"
    assert main(["diff", *pair, "--format", "md", "--out", str(out)]) == 0  # a viewer
    text = out.read_text()
    rows = {row[1]: row for row in _cells(text)[1:]}
    header = _cells(text)[0]
    assert header == list(compare.COLUMNS)
    assert all(len(row) == len(header) for row in rows.values())
    assert rows["top1_accuracy"][:7] == [
        "new failure",
        "top1_accuracy",
        "✓ pass",
        "✗ fail",
        "0.9412",
        "0.85",
        "-0.0912",
    ]
    assert rows["per_class_recall"][:6] == [
        "fixed",
        "per_class_recall",
        "✗ fail",
        "✓ pass",
        "0.62",
        "0.75",
    ]
    assert rows[HOSTILE][:4] == ["new failure", HOSTILE, "absent", "✗ fail"]  # added, failing
    assert rows["ece"][:4] == ["removed", "ece", "! warn", "absent"]
    assert rows["macro_f1"][0] == "still failing" and rows["mcnemar"][0] == ""
    assert "PASS → FAIL (exit 0 → 1)" in text.splitlines()[0]
    assert "abababababab" in text and "cdcdcdcdcdcd" in text  # both digests
    d = compare.load(*pair)
    assert [r.name for r in d.named(compare.NEW_FAILURE)] == ["top1_accuracy", HOSTILE]
    assert [r.name for r in d.named(compare.FIXED)] == ["per_class_recall"]


def test_diff_terminal_prints_names_literally_and_says_what_changed(pair, capsys):
    assert main(["diff", *pair, "--format", "terminal"]) == 0  # 80 columns: before → after
    out = capsys.readouterr().out
    assert "new failures: 2" in out and "fixed: 1" in out
    assert "[bold]x[/]" in out and "<script>" in out  # never read as markup
    assert re.search(r"│ top1_accuracy\s+│ ✓ pass → ✗ fail\s+│ 0.9412 → 0.85\s+│ -0.0912", out)
    wide = compare.render(compare.load(*pair), "terminal")  # 120 columns: a column each
    assert re.search(r"top1_accuracy\s+│ ✓ pass\s+│ ✗ fail\s+│ 0.9412\s+│ 0.85\s+│ -0.0912", wide)
    assert "accuracy_low >= 0.9" in wide


class _Page(HTMLParser):
    """Every tag, the text of each table cell row by row, and each svg's place."""

    def __init__(self):
        super().__init__()
        self.tags, self.rows, self.svgs, self.cell = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""
        elif tag == "svg":
            self.svgs.append(len(self.rows))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None and "svg" not in self.tags[-1:]:
            self.cell += data


def test_diff_html_is_self_contained_and_escapes_a_hostile_check_name(pair, tmp_path):
    out = tmp_path / "diff.html"
    assert main(["diff", *pair, "--format", "html", "--out", str(out)]) == 0
    text = out.read_text()
    page = _Page()
    page.feed(text)
    assert "script" not in page.tags and "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    rows = {row[1]: row for row in page.rows[1:]}
    assert rows[HOSTILE][:4] == ["new failure", HOSTILE, "absent", "✗ fail"]
    assert rows["top1_accuracy"][4:7] == ["0.9412", "0.85", "-0.0912"]
    assert "default-src 'none'" in text and "http" not in text.replace("http-equiv", "")


def test_diff_of_a_run_that_stopped_on_an_error_names_the_error(pair, tmp_path):
    error = json_report.error_document(
        "suites/release.yaml",
        "candidate.pt",
        2,
        "candidate.pt: not a checkpoint",
        started="2026-01-03T00:00:00+00:00",
        duration=0.1,
        strict=False,
        device="cpu",
    )
    stopped = _save(tmp_path / "err" / "result.json", error)
    d = compare.load(pair[1], stopped)
    assert [r.name for r in d.named(compare.NEW_FAILURE)] == [json_report.ERROR_CHECK]
    assert d.new.error == "candidate.pt: not a checkpoint"
    assert "FAIL → ERROR (exit 1 → 2)" in compare.render(d, "md")


def test_history_orders_runs_by_start_and_shows_each_value_per_run(tmp_path, capsys):
    first, second, third = _old(), _new(), _new()
    first["started"] = "2026-01-01T01:00:00+02:00"  # 23:00 UTC the day before: first
    second["started"] = "2026-01-01T00:00:00+00:00"
    third["started"] = "2026-01-05T00:00:00+00:00"
    third["checks"][0]["metrics"]["accuracy_low"] = 0.8
    runs = tmp_path / "runs"
    paths = [
        _save(runs / "c" / "result.json", third),
        _save(runs / "a" / "deeper" / "result.json", first),
        _save(tmp_path / "second.json", second),
    ]
    # a folder stands for every result.json below it; a file named twice counts once
    assert main(["history", str(runs), paths[2], paths[0], "--format", "md"]) == 0
    text = capsys.readouterr().out
    rows = {row[0]: row[1:] for row in _cells(text)}
    assert rows["check"] == ["#1", "#2", "#3"]
    assert rows["top1_accuracy"] == ["✓ 0.9412", "✗ 0.85", "✗ 0.8"]
    assert rows["per_class_recall"] == ["✗ 0.62", "✓ 0.75", "✓ 0.75"]
    assert rows["ece"] == ["! 0.08", "", ""] and rows[HOSTILE] == ["", "✗ 0.08", "✗ 0.08"]
    assert rows["verdict"] == ["✓ pass", "✗ fail", "✗ fail"]
    legend = [line for line in text.splitlines() if line.startswith("- **#")]
    assert [p.split("/")[-2] for p in re.findall(r"`([^`]*\.json)`", "".join(legend))] == [
        "deeper",
        str(tmp_path).split("/")[-1],
        "c",
    ]


def test_history_html_draws_a_trend_per_check_and_shows_an_error_run_as_a_column(pair, tmp_path):
    error = json_report.error_document(
        "suites/release.yaml",
        "broken.pt",
        3,
        "internal error <b>x</b>",
        started="2026-01-03T00:00:00+00:00",
        duration=0.1,
        strict=False,
        device="cpu",
    )
    stopped = _save(tmp_path / "err" / "result.json", error)
    out = tmp_path / "history.html"
    assert main(["history", *pair, stopped, "--format", "html", "--out", str(out)]) == 0
    text = out.read_text()
    page = _Page()
    page.feed(text)
    assert "script" not in page.tags and "<b>x" not in text
    body = page.rows[1:]
    assert body[0][0] == "verdict" and body[0][-1] == "? error: internal error <b>x</b>"
    checks = [row[0] for row in body[1:]]
    assert checks == ["top1_accuracy", "per_class_recall", HOSTILE, "macro_f1", "mcnemar", "ece"]
    assert page.svgs == list(range(3, 3 + len(checks)))  # one trend in each check's row
    top1 = body[1]
    assert top1[2:] == ["✓ 0.9412", "✗ 0.85", ""]
    assert json_report.ERROR_CHECK not in checks
    assert text.count("<polyline") == 2  # the two checks with a value in both runs


def test_history_trend_places_values_by_run_and_scales_to_the_threshold(pair):
    h = history.load(list(pair))
    t = history.trend(h.lines[0], h.runs)  # top1: 0.9412 then 0.85, threshold 0.9
    (x1, y1, s1, _), (x2, y2, s2, _) = t["points"]
    assert (s1, s2) == ("pass", "fail") and x1 < x2 and y1 < y2  # higher value, higher up
    assert [label for _, label in t["labels"]] == ["0.9412", "0.85"]
    limit = t["limits"][0][2]
    assert y1 < limit < y2  # 0.9 lies between


@pytest.mark.parametrize("command", ["diff", "history"])
def test_a_file_that_is_not_json_is_exit_2_with_one_line(pair, tmp_path, capsys, command):
    bad = tmp_path / "notes.json"
    bad.write_text("not json {")
    argv = [command, pair[0], str(bad)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {bad}: not JSON")


def test_a_folder_without_results_and_repeated_check_names_are_exit_2(pair, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["history", str(tmp_path / "empty")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path / 'empty'}: no result.json in this folder or below it\n"
    )
    doc = json.loads(Path(pair[0]).read_text())
    doc["checks"][1]["name"] = doc["checks"][0]["name"]
    twice = _save(tmp_path / "twice.json", doc)
    assert main(["diff", twice, pair[1]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checks.1.name" in err and "twice" in err


def test_a_warning_is_a_failure_only_in_a_strict_run():
    lenient, strict = _old(), _old()
    strict["strict"] = True
    d = compare.diff("lenient.json", lenient, "strict.json", strict)
    assert [r.name for r in d.named(compare.NEW_FAILURE)] == ["ece"]  # warn, now blocking
    back = compare.diff("strict.json", strict, "lenient.json", lenient)
    assert [r.name for r in back.named(compare.FIXED)] == ["ece"]


def test_history_refuses_a_start_time_it_cannot_order_by(pair, tmp_path, capsys):
    doc = _old()
    doc["started"] = "yesterday"
    odd = _save(tmp_path / "odd.json", doc)
    assert main(["history", pair[1], odd]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {odd}: started: expected an ISO 8601 time, found 'yesterday'\n"
