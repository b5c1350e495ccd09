"""`qa schema`: the JSON Schemas agree with the validators they are generated from.

A file `load_suite` (or `json_report.load`) accepts is valid under the schema, and the mistakes
it refuses that the schema can express (an unknown key, another kind's parameter, a wrong type)
are invalid under it too. Real documents: the shipped suites, the README's example, a result.json
and an error result.json written by `qa run` on tiny real data.
"""

import json
import re
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from helpers import save_tiny, write_data, write_suite
from jsonschema import Draft202012Validator
from pydantic import Field

from qa.checks import REGISTRY, CheckKind, CheckParams, CheckResult, load_all
from qa.cli import main
from qa.errors import InputError
from qa.report import json_report
from qa.schema import result_schema, suite_schema
from qa.suite import CheckHeader, load_suite
from qa.suite_yaml import read_yaml

ROOT = Path(__file__).resolve().parents[1]
KINDS = sorted(load_all())
HEAD = {"name": "t", "data": {"eval": "data/eval"}, "baseline": "base.pt"}


@pytest.fixture(scope="module")
def suite_validator():
    schema = suite_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def result_validator():
    schema = result_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _readme_suite(tmp_path: Path) -> Path:
    """The README's example suite, as a file."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1
    path = tmp_path / "readme.yaml"
    path.write_text(blocks[0])
    return path


def _suite_file(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("name", ["smoke", "release", "slices", "README"])
def test_the_shipped_suites_and_the_readme_example_are_valid(tmp_path, suite_validator, name):
    path = _readme_suite(tmp_path) if name == "README" else ROOT / "suites" / f"{name}.yaml"
    load_suite(path)
    doc, _ = read_yaml(path)
    assert list(suite_validator.iter_errors(doc)) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_kinds_example_is_valid_under_the_schema_as_under_the_validator(
    tmp_path, suite_validator, kind
):
    entry = {"kind": kind, "name": "x", "severity": "warn", **REGISTRY[kind].params.example}
    doc = {**HEAD, "checks": [entry, {**entry, "name": "y", "slice": {"column": "c", "in": [1]}}]}
    load_suite(_suite_file(tmp_path, doc))
    assert list(suite_validator.iter_errors(doc)) == []


def test_every_registered_kind_has_a_branch_with_its_parameters_and_descriptions():
    check = suite_schema()["$defs"]["Check"]
    assert check["properties"]["kind"]["enum"] == KINDS
    branches = {b["if"]["properties"]["kind"]["const"]: b["then"] for b in check["allOf"]}
    assert sorted(branches) == KINDS
    for kind, branch in branches.items():
        fields = REGISTRY[kind].params.model_fields
        described = {**CheckHeader.model_fields, **fields}
        assert set(branch["properties"]) == {f.alias or n for n, f in described.items()}
        assert branch["additionalProperties"] is False
        for name, field in described.items():
            assert branch["properties"][field.alias or name].get("description") == field.description


class _NewParams(CheckParams):
    example: ClassVar[dict] = {"level": 3}
    level: int = Field(ge=1, description="how high")


def test_a_newly_registered_kind_is_in_the_schema_for_free(monkeypatch):
    def new_check(evidence, params):
        """A kind registered after qa's own."""
        return CheckResult("pass", "ok")

    monkeypatch.setitem(REGISTRY, "zz_new", CheckKind("zz_new", "test", _NewParams, new_check))
    validator = Draft202012Validator(suite_schema())
    assert validator.is_valid({**HEAD, "checks": [{"kind": "zz_new", "level": 3}]})
    assert not validator.is_valid({**HEAD, "checks": [{"kind": "zz_new", "level": 0}]})
    assert not validator.is_valid({**HEAD, "checks": [{"kind": "zz_new", "level": 3, "min": 0.5}]})


REFUSED_ENTRIES = {
    "unknown key": {"kind": "top1_accuracy", "min": 0.9, "minimum": 0.9},
    "another kind's parameter": {"kind": "top1_accuracy", "min": 0.9, "bins": 15},
    "a required parameter missing": {"kind": "top1_accuracy"},
    "a number as text": {"kind": "top1_accuracy", "min": "0.9"},
    "out of range": {"kind": "ece", "max": -0.1},
    "a value not in the choices": {"kind": "ece", "max": 0.1, "binning": "quantile"},
    "an unknown kind": {"kind": "top1_acuracy", "min": 0.9},
    "no kind": {"min": 0.9},
    "a bad severity": {"kind": "top1_accuracy", "min": 0.9, "severity": "error"},
    "an unknown slice key": {"kind": "top1_accuracy", "min": 0.9, "slice": {"col": "c"}},
    "not a mapping": "top1_accuracy",
}
REFUSED_SUITES = {
    "unknown top-level key": {**HEAD, "check": [], "checks": [{"kind": "leakage"}]},
    "no checks": {**HEAD, "checks": []},
    "unknown data key": {
        **HEAD,
        "data": {"eval": {"folder": "x"}},
        "checks": [{"kind": "leakage"}],
    },
    "no eval": {**HEAD, "data": {"train": "x"}, "checks": [{"kind": "leakage"}]},
    "bad default": {**HEAD, "defaults": {"confidence": 1.5}, "checks": [{"kind": "leakage"}]},
}


@pytest.mark.parametrize(
    "doc",
    [{**HEAD, "checks": [e]} for e in REFUSED_ENTRIES.values()] + list(REFUSED_SUITES.values()),
    ids=[*REFUSED_ENTRIES, *REFUSED_SUITES],
)
def test_what_the_validator_refuses_is_invalid_under_the_schema(tmp_path, suite_validator, doc):
    with pytest.raises(InputError):
        load_suite(_suite_file(tmp_path, doc))
    assert not suite_validator.is_valid(doc)


def test_a_split_is_a_folder_or_a_mapping(suite_validator):
    checks = [{"kind": "leakage"}]
    for split in ("data/x", {"path": "data/x"}, {"manifest": "m.csv", "root": "data"}):
        doc = {**HEAD, "data": {"eval": split, "train": split}, "checks": checks}
        assert suite_validator.is_valid(doc), split
    assert not suite_validator.is_valid({**HEAD, "data": {"eval": ""}, "checks": checks})


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """result.json of a finished run (a pass, a warning, an inconclusive gate: exit 1) and of a
    run stopped by bad input (exit 2)."""
    tmp = tmp_path_factory.mktemp("results")
    data = write_data(tmp / "digits", per_class=2)
    ckpt = save_tiny(tmp / "cand.pt", seed=4)
    checks = (
        "- {kind: top1_accuracy, min: 0.0}\n"
        "- {kind: top1_accuracy, min: 0.99, severity: warn}\n"
        "- {kind: ece, max: 0.01}\n"
    )
    good = write_suite(tmp / "good.yaml", data, checks)
    bad = write_suite(tmp / "bad.yaml", data, "- {kind: top1_accuracy, minimum: 0.9}\n")
    docs = {}
    for name, suite, code in (("finished", good, 1), ("error", bad, 2)):
        out = tmp / name
        argv = ["run", str(suite), str(ckpt), "--out", str(out), "--no-cache", "--quiet"]
        assert main(argv) == code
        docs[name] = json_report.load(out / "result.json")
    return docs


@pytest.mark.parametrize("name", ["finished", "error"])
def test_a_result_written_by_qa_run_is_valid(results, result_validator, name):
    doc = results[name]
    statuses = ["pass", "warn", "error"] if name == "finished" else ["error"]
    assert [c["status"] for c in doc["checks"]] == statuses
    assert list(result_validator.iter_errors(doc)) == []


@pytest.mark.parametrize("key", ["schema_version", "verdict", "summary", "checks", "suite"])
def test_a_result_missing_a_required_key_is_invalid(results, result_validator, tmp_path, key):
    doc = {k: v for k, v in results["finished"].items() if k != key}
    assert not result_validator.is_valid(doc)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError):
        json_report.load(path)


def test_a_result_with_a_wrong_value_is_invalid(results, result_validator):
    doc = results["finished"]
    assert not result_validator.is_valid({**doc, "schema_version": 3})
    assert not result_validator.is_valid({**doc, "verdict": "ok"})
    check = {**doc["checks"][0], "status": "passed"}
    assert not result_validator.is_valid({**doc, "checks": [check]})


def test_the_precision_is_recorded_checked_and_optional_for_older_results(
    results, result_validator, tmp_path
):
    doc = results["finished"]
    assert (
        doc["environment"]["precision"] == "fp32"
        and "precision" not in results["error"]["environment"]
    )
    path = tmp_path / "result.json"
    wrong = {**doc, "environment": {**doc["environment"], "precision": "fp8"}}
    assert not result_validator.is_valid(wrong)
    path.write_text(json.dumps(wrong))
    with pytest.raises(
        InputError, match=r"environment\.precision: expected 'fp32', 'bf16' or 'fp16'"
    ):
        json_report.load(path)
    older = {
        **doc,
        "environment": {k: v for k, v in doc["environment"].items() if k != "precision"},
    }
    assert result_validator.is_valid(older)
    path.write_text(json.dumps(older))
    assert json_report.load(path) == older


@pytest.mark.parametrize("which", ["suite", "result"])
def test_qa_schema_prints_the_schema(capsys, which):
    assert main(["schema", which]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert printed == {"suite": suite_schema, "result": result_schema}[which]()
    assert main(["schema", "report"]) == 2  # argparse's usage error
