"""The Python API (qa.api): `qa.run` on real digits and a real tiny model, read back."""

import json
from html.parser import HTMLParser

import pytest
from helpers import sample_doc, write_suite

import qa
from qa.cli import main
from qa.errors import InputError
from qa.report import html as html_report

HOSTILE = """</iframe><script>alert("x")</script> & 'q'"""
PASSING = "- {kind: top1_accuracy, min: 0.0}\n- {kind: accuracy_regression, tolerance: 0.01}\n"
FAILING = (
    "- {kind: top1_accuracy, min: 0.0}\n"
    f"- {{kind: top1_accuracy, min: 0.99, name: {json.dumps(HOSTILE)}}}\n"
    "- {kind: top1_accuracy, min: 0.99, severity: warn, name: soft}\n"
)
TIMINGS = ("started", "finished", "duration")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def failing(tmp_path_factory, data, ckpt, cache):
    suite = write_suite(tmp_path_factory.mktemp("suite") / "fail.yaml", data, FAILING)
    return qa.run(suite, ckpt, cache_dir=cache)


def _untimed(doc: dict) -> dict:
    """`doc` without the run's clock readings (every other field is the run's decision)."""
    checks = [{k: v for k, v in c.items() if k != "seconds"} for c in doc["checks"]]
    return {**{k: v for k, v in doc.items() if k not in TIMINGS}, "checks": checks}


def test_a_passing_suite_passes_with_exit_0(tmp_path, data, ckpt, cache, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = write_suite(tmp_path / "s.yaml", data, PASSING)
    result = qa.run(suite, ckpt, baseline=ckpt, cache_dir=cache)
    assert (result.passed, result.exit_code, result.verdict, result.failed) == (True, 0, "pass", [])
    top1, regression = result.checks
    assert (top1.status, top1.threshold) == ("pass", qa.Threshold("accuracy_low", ">=", 0.0))
    low, high = top1.interval
    assert top1.value == low and 0.0 <= low <= high <= 1.0
    assert (regression.status, regression.family, regression.threshold.op) == (
        "pass",
        "regression",
        ">=",
    )
    # the model against itself: a delta of 0 in the interval [0, 0], both models' values
    assert (regression.threshold.metric, regression.value, regression.interval) == (
        "delta_upper",
        0.0,
        (0.0, 0.0),
    )
    assert regression.estimate == regression.effect["delta"] == 0.0
    assert regression.effect["candidate"] == regression.effect["baseline"] == top1.estimate
    assert [p.name for p in tmp_path.iterdir()] == ["s.yaml"]  # no report unless asked
    assert capsys.readouterr() == ("", "")  # no table, no progress bar


def test_a_check_without_a_gate_has_no_value_interval_or_threshold():
    skipped = qa.Check.from_document(sample_doc()["checks"][-1])
    assert (skipped.status, skipped.value, skipped.interval, skipped.threshold) == (
        "skip",
        None,
        None,
        None,
    )


def test_a_failing_suite_fails_with_exit_1_and_names_the_failing_checks(failing):
    assert (failing.passed, failing.exit_code, failing.verdict) == (False, 1, "fail")
    assert [c.status for c in failing.checks] == ["pass", "fail", "warn"]
    assert [c.name for c in failing.failed] == [HOSTILE]  # the warning blocks only when strict
    bad = failing.failed[0]
    assert (bad.kind, bad.family, bad.severity) == ("top1_accuracy", "accuracy", "fail")
    assert bad.value < 0.99 and f"{bad.value:.4f}" in bad.message
    with pytest.raises(AttributeError):
        bad.status = "pass"  # frozen: a result cannot be edited into a pass
    assert "exit 1" in repr(failing) and "1 fail" in repr(failing)


def test_strict_makes_a_warning_fail(tmp_path, data, ckpt, cache):
    checks = "- {kind: top1_accuracy, min: 0.99, severity: warn, name: soft}\n"
    suite = write_suite(tmp_path / "s.yaml", data, checks)
    assert qa.run(suite, ckpt, cache_dir=cache).passed
    strict = qa.run(suite, ckpt, cache_dir=cache, strict=True)
    assert (strict.passed, strict.exit_code, [c.name for c in strict.failed]) == (
        False,
        1,
        ["soft"],
    )


def test_checks_carry_the_documents_numbers(failing):
    doc = failing.to_dict()
    assert len(failing.checks) == len(doc["checks"])
    for check, entry in zip(failing.checks, doc["checks"], strict=True):
        metrics, gate = entry["metrics"], entry["threshold"]
        assert (check.name, check.status, check.message) == (
            entry["name"],
            entry["status"],
            entry["message"],
        )
        assert (check.threshold.op, check.threshold.value) == (gate["op"], gate["value"])
        assert check.value == metrics["accuracy_low"]
        assert check.interval == (metrics["accuracy_low"], metrics["accuracy_high"])
        assert check.estimate == metrics["accuracy"] and check.effect == entry["effect"]


def test_to_dict_is_what_qa_run_writes(tmp_path, data, ckpt):
    suite = write_suite(tmp_path / "s.yaml", data, FAILING)
    result = qa.run(suite, ckpt, cache_dir=None)
    out = tmp_path / "reports"
    assert main(["run", str(suite), str(ckpt), "--out", str(out), "--no-cache", "--quiet"]) == 1
    written = json.loads((out / "result.json").read_text())
    assert _untimed(result.to_dict()) == _untimed(written)
    result.to_dict()["checks"].clear()
    assert len(result.to_dict()["checks"]) == 3  # a copy: the result stays as decided


def test_save_html_and_save_write_the_reports(failing, tmp_path):
    page = tmp_path / "nested" / "report.html"
    assert failing.save_html(page) == page
    text = page.read_text(encoding="utf-8")
    assert text == html_report.render(failing.to_dict()) == failing.html()
    assert "soft" in text and "&lt;/iframe&gt;&lt;script&gt;" in text
    paths = failing.save(tmp_path / "reports")
    assert sorted(p.name for p in paths.values()) == [
        "junit.xml",
        "result.html",
        "result.json",
        "summary.md",
    ]
    assert json.loads(paths["json"].read_text()) == failing.to_dict()
    assert paths["html"].read_text(encoding="utf-8") == text
    again = qa.Result.load(paths["json"])  # e.g. a CI run's, opened in a notebook
    assert again.to_dict() == failing.to_dict() and again.checks == failing.checks
    assert again._repr_html_() == failing._repr_html_()
    with pytest.raises(InputError, match=r"^save_html .*: expected a file name, found a folder$"):
        failing.save_html(tmp_path)


class _Page(HTMLParser):
    """The start tags of a page, with their attributes, and its text (entities resolved)."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text = ""
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data


def test_the_notebook_shows_the_report_in_a_sandboxed_iframe(failing):
    (tag, attrs), *rest = _Page(failing._repr_html_()).tags
    assert (tag, rest) == ("iframe", [])  # the hostile check name did not break out
    assert attrs["sandbox"] == "allow-scripts"  # no same-origin: the page cannot reach the notebook
    assert attrs["srcdoc"] == failing.html()
    page = _Page(attrs["srcdoc"])
    assert all(c.name in page.text for c in failing.checks)  # the hostile name, as text
    assert [t for t, _ in page.tags].count("iframe") == 0
    assert [t for t, _ in page.tags].count("script") == 1  # the report's own filter script


def test_a_malformed_suite_raises_input_error_with_the_line_qa_run_prints(tmp_path, ckpt, capsys):
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: t\ndata: {eval: d}\nchecks:\n  - {kind: top1_accuracy, min: high}\n")
    with pytest.raises(InputError) as caught:
        qa.run(suite, ckpt)
    line = str(caught.value)
    assert line.startswith(f"{suite}:4:") and "\n" not in line
    assert main(["run", str(suite), str(ckpt), "--quiet", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == f"error: {line}\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"batch_size": 0}, "batch_size: expected a positive integer, found 0"),
        ({"batch_size": True}, "batch_size: expected a positive integer, found True"),
        ({"workers": -1}, "workers: expected a non-negative integer, found -1"),
        ({"workers": 1.5}, "workers: expected a non-negative integer, found 1.5"),
        ({"precision": "fp8"}, "precision: expected one of fp32, bf16, fp16, found 'fp8'"),
        ({"device": "tpu"}, "device: expected one of cpu, cuda, found 'tpu'"),
    ],
)
def test_a_bad_option_raises_input_error(tmp_path, data, ckpt, option, message):
    suite = write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0.0}\n")
    with pytest.raises(InputError) as caught:
        qa.run(suite, ckpt, cache_dir=None, **option)
    assert str(caught.value) == message
