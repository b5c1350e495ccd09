"""What CI shows of a run: GitHub annotations at the checks' suite lines, warnings in JUnit."""

import xml.etree.ElementTree as ET

import pytest
from helpers import sample_doc, write_suite

from qa.cli import main
from qa.report import annotations, junit
from qa.suite_yaml import check_lines

# a passing check on line 6, a failing one on line 8, a warned one on lines 9-12
CHECKS = """\
# the gates
- {kind: top1_accuracy, min: 0.0}
- kind: top1_accuracy   # fails: a random model is not 99% accurate
  min: 0.99

- name: "warned: 99%, surely"
  kind: top1_accuracy
  min: 0.99
  severity: warn
"""


@pytest.fixture
def suite(tmp_path, data):
    return write_suite(tmp_path / "s.yaml", data, CHECKS)


@pytest.fixture
def github(monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")


def _annotations(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("::")]


def test_check_lines_are_the_lines_of_each_entry(suite):
    assert check_lines(suite) == [6, 7, 10]


def test_a_failing_and_a_warned_check_are_annotated_at_their_lines(
    tmp_path, suite, ckpt, capsys, github
):
    out = str(tmp_path / "r")
    assert main(["run", str(suite), str(ckpt), "--out", out, "--no-cache", "--quiet"]) == 1
    failed, warned = _annotations(capsys)
    assert failed.startswith(f"::error file={suite},line=7,title=top1_accuracy#2::top-1")
    assert warned.startswith(
        f"::warning file={suite},line=10,title=warned%3A 99%25%2C surely::top-1"
    )
    assert "misses >= 0.99" in warned
    assert main(["run", str(suite), str(ckpt), "--out", out, "--no-cache", "--quiet", "--strict"])
    failed, warned = _annotations(capsys)
    assert warned.startswith(f"::error file={suite},line=10,")
    assert "::warn (blocks with --strict): top-1" in warned


def test_no_annotations_outside_github_actions(tmp_path, suite, ckpt, capsys, monkeypatch):
    for value in (None, "false"):
        if value is None:
            monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
        else:
            monkeypatch.setenv("GITHUB_ACTIONS", value)
        assert main(["run", str(suite), str(ckpt), "--out", str(tmp_path / "r"), "--no-cache"])
        out = capsys.readouterr().out
        assert "FAIL" in out and "::" not in out


def test_a_bad_suite_is_annotated_at_the_line_of_its_error(tmp_path, data, ckpt, capsys, github):
    bad = write_suite(tmp_path / "bad.yaml", data, "- kind: top1_accuracy\n  mni: 0.9\n")
    assert main(["run", str(bad), str(ckpt), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    (line,) = _annotations(capsys)
    assert line.startswith(f"::error file={bad},line=6,title=qa run::{bad}:6: checks[0]")


def test_messages_and_properties_are_escaped_as_github_reads_them():
    doc = sample_doc()
    doc["checks"] = [{**doc["checks"][1], "name": "a:b,c%", "message": "50%\r\nnext: a, b"}]
    text = annotations.render(doc, [12])
    assert text == (
        "::error file=suites/release.yaml,line=12,title=a%3Ab%2Cc%25::50%25%0D%0Anext: a, b\n"
    )
    assert annotations.render(doc, [1, 2]).startswith("::error file=suites/release.yaml,title=")
    doc["checks"][0]["message"] = "class \udcff \x1b[31mred"  # an undecodable folder name
    text = annotations.render(doc, [12])
    assert text.endswith("::class \\udcff \\x1b[31mred\n")
    text.encode("utf-8")  # stdout can write it
    doc["checks"][0]["status"] = "error"
    assert "::not evaluated: class" in annotations.render(doc, [12])
    doc["checks"][0]["status"] = "pass"
    assert annotations.render(doc, [12]) == ""


def _cases(doc) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.fromstring(junit.render(doc))
    return root, {c.get("name"): c for c in root.iter("testcase")}


def test_a_warned_check_is_a_skipped_testcase_that_says_warn():
    root, cases = _cases(sample_doc())
    skipped = cases["ece"].find("skipped")
    assert skipped.get("message") == "warn: ECE 0.0800 misses <= 0.05"
    assert cases["ece"].find("failure") is None
    assert root.get("skipped") == "2" and root.get("failures") == "1"
    props = [(p.get("name"), p.get("value")) for p in root.find("properties")]
    assert props == [("qa.verdict", "fail"), ("qa.warn", "ece")]
    assert cases["mcnemar"].find("skipped").get("message") == "no baseline given"  # a true skip


def test_under_strict_a_warned_check_is_a_failure():
    doc = sample_doc()
    doc["strict"] = True
    root, cases = _cases(doc)
    failure = cases["ece"].find("failure")
    assert failure.get("message") == "warn (blocks with --strict): ECE 0.0800 misses <= 0.05"
    assert cases["ece"].find("skipped") is None
    assert (root.get("failures"), root.get("skipped")) == ("2", "1")


# Jenkins' JUnit schema (jenkins-junit.xsd), the parts junit.xml uses: each element's children
# in their required order, with (min, max) occurrences, and its allowed and required attributes.
JENKINS = {
    "testsuite": {
        "children": [("properties", 0, 1), ("testcase", 0, None), ("system-out", 0, 1)],
        "attributes": {"name", "tests", "failures", "errors", "time", "disabled", "skipped"}
        | {"timestamp", "hostname", "id", "package", "file", "log", "url", "version"},
        "required": {"name", "tests"},
    },
    "properties": {"children": [("property", 1, None)], "attributes": set(), "required": set()},
    "property": {"children": [], "attributes": {"name", "value"}, "required": {"name", "value"}},
    "testcase": {
        "children": [
            ("skipped", 0, 1),
            ("error", 0, None),
            ("failure", 0, None),
            ("system-out", 0, None),
            ("system-err", 0, None),
        ],
        "attributes": {"name", "assertions", "time", "classname", "status"},
        "required": {"name"},
    },
    "skipped": {"children": [], "attributes": {"message"}, "required": set()},
    "error": {"children": [], "attributes": {"message", "type"}, "required": set()},
    "failure": {"children": [], "attributes": {"message", "type"}, "required": set()},
    "system-out": {"children": [], "attributes": set(), "required": set()},
}


def _jenkins_problems(element: ET.Element) -> list[str]:
    rule = JENKINS.get(element.tag)
    if rule is None:
        return [f"unknown element <{element.tag}>"]
    problems = [f"<{element.tag} {a}=>" for a in set(element.attrib) - rule["attributes"]]
    problems += [f"<{element.tag}> lacks {a}" for a in rule["required"] - set(element.attrib)]
    tags, at = [child.tag for child in element], 0
    for tag, least, most in rule["children"]:
        n = 0
        while at < len(tags) and tags[at] == tag:
            n, at = n + 1, at + 1
        if n < least or (most is not None and n > most):
            problems.append(f"<{element.tag}> has {n} <{tag}>")
    if at < len(tags):
        problems.append(f"<{element.tag}> children out of order: {tags}")
    return problems + [p for child in element for p in _jenkins_problems(child)]


@pytest.mark.parametrize("strict", [False, True])
def test_junit_keeps_to_jenkins_schema(strict):
    doc = sample_doc()
    doc["strict"] = strict
    root = ET.fromstring(junit.render(doc))
    assert {c.get("name") for c in root.iter("testcase")} == {c["name"] for c in doc["checks"]}
    assert _jenkins_problems(root) == []
