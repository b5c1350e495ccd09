"""The suite loader: good suites load typed; bad ones give one line with file, line and key path."""

import subprocess
import sys
import textwrap
from typing import ClassVar

import pytest

from qa.checks import REGISTRY, CheckParams, CheckResult, register
from qa.cli_info import describe_checks
from qa.errors import InputError
from qa.evidence import CLEAN, View
from qa.suite import load_suite

GOOD = """\
name: release
description: the gates a candidate must pass
model:
  arch: resnet18
  arch_kwargs: {num_classes: 3}
data:
  eval: data/test
  train: {manifest: train.csv, root: images}
defaults: {confidence: 0.9, interval: clopper_pearson}
checks:
  - kind: top1_accuracy
    min: 0.9
  - kind: top1_accuracy
    name: camera A
    severity: warn
    slice: {column: camera, equals: A}
    min: 1e-1
    gate_on: point
  - kind: top1_accuracy
    slice: {column: camera, in: [B, 3]}
    min: 0.5
  - kind: confusion_rate
    true: cat
    predicted: dog
    max: 0.1
"""

BASE = "name: r\ndata:\n  eval: d\nchecks:\n"


def _load(tmp_path, monkeypatch, text: str, **kwargs):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite.yaml").write_text(text)
    return load_suite("suite.yaml", **kwargs)


def _error(tmp_path, monkeypatch, text: str, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        _load(tmp_path, monkeypatch, text, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_the_precision_is_fp32_unless_the_defaults_name_another(tmp_path, monkeypatch, precision):
    plain = "name: r\ndata:\n  eval: d\n" + CHECK
    assert _load(tmp_path, monkeypatch, plain).defaults.precision == "fp32"
    chosen = f"name: r\ndata:\n  eval: d\ndefaults: {{precision: {precision}}}\n" + CHECK
    assert _load(tmp_path, monkeypatch, chosen).defaults.precision == precision


def test_a_good_suite_loads_typed(tmp_path, monkeypatch):
    suite = _load(tmp_path, monkeypatch, GOOD)
    assert suite.name == "release"
    assert [c.name for c in suite.checks] == [
        "top1_accuracy",
        "camera A",
        "top1_accuracy#2",
        "confusion_rate",
    ]
    first, camera, other, confusion = suite.checks
    assert first.params.min == 0.9 and first.params.gate_on == "bound"
    assert first.severity == "fail" and first.slice is None
    assert camera.severity == "warn" and camera.params.min == 0.1  # 1e-1 is a number
    assert camera.slice.as_dict() == {"column": "camera", "equals": "A"}
    assert other.slice.as_dict() == {"column": "camera", "in": ["B", 3]}
    assert confusion.params.true == "cat"  # the key `true:` is text, not a YAML boolean
    assert suite.data.eval.path == "data/test"
    assert suite.data.train.manifest == "train.csv" and suite.data.train.root == "images"
    assert list(suite.data.splits()) == ["eval", "train"]
    assert (suite.defaults.confidence, suite.defaults.interval) == (0.9, "clopper_pearson")
    assert suite.defaults.batch_size == 256
    assert suite.model.resolved_class_names() == ["0", "1", "2"]
    assert suite.model.preprocessing.crop == 224
    assert suite.baseline is None and not suite.requires_baseline()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  - kind: top1_accuracy\n    min: high\n",
            "suite.yaml:6: checks[0].min: expected a number, found 'high'",
        ),
        (
            "  - kind: top1_accuracy\n    min: '0.9'\n",
            "suite.yaml:6: checks[0].min: expected a number, found '0.9'",
        ),
        (
            "  - kind: top1_accuracy\n    min: 1.5\n",
            "suite.yaml:6: checks[0].min: expected a number <= 1, found 1.5",
        ),
        (
            "  - kind: top1_acuracy\n    min: 0.9\n",
            "suite.yaml:5: checks[0].kind: unknown check kind 'top1_acuracy'; did you mean top1_accuracy?",
        ),
        (
            "  - kind: top1_accuracy\n    mni: 0.9\n",
            "suite.yaml:6: checks[0].mni: unknown parameter 'mni' for top1_accuracy; did you mean min? (valid: min, gate_on)",
        ),
        (
            "  - kind: top1_accuracy\n    severity: warn\n",
            "suite.yaml:5: checks[0].min: missing required parameter",
        ),
        (
            "  - kind: top1_accuracy\n    min: 0.9\n    severity: fatal\n",
            "suite.yaml:7: checks[0].severity: expected 'fail' or 'warn', found 'fatal'",
        ),
        (
            "  - kind: per_class_recall\n    min: 0.5\n    classes: 5\n",
            "suite.yaml:7: checks[0].classes: expected 'all' or a list, found 5",
        ),
        (
            "  - kind: per_class_recall\n    min: 0.5\n    classes:\n      - cat\n      - 3\n",
            "suite.yaml:9: checks[0].classes[1]: expected a string, found 3",
        ),
        (
            "  - kind: top1_accuracy\n    min: 0.5\n    slice: {column: c}\n",
            "suite.yaml:7: checks[0].slice: give exactly one of `equals: VALUE` or `in: [VALUES]`",
        ),
        (
            "  - kind: top1_accuracy\n    min: 0.5\n    slice:\n      column: c\n      equal: 3\n",
            "suite.yaml:9: checks[0].slice.equal: unknown key 'equal'; did you mean equals? (valid: column, equals, in)",
        ),
        (
            "  - kind: top1_accuracy\n    min: 0.5\n    min: 0.6\n",
            "suite.yaml:7: checks[0].min: duplicate key (YAML would keep only the last)",
        ),
        (
            "  - kind: top1_accuracy\n    name: a\n    min: 0.5\n  - kind: macro_f1\n    name: a\n    min: 0.5\n",
            "suite.yaml:9: checks[1].name: duplicate check name 'a'; names are unique",
        ),
        (
            "  - top1_accuracy\n",
            "suite.yaml:5: checks[0]: expected a mapping with `kind`, found 'top1_accuracy'",
        ),
        ("  - min: 0.5\n", "suite.yaml:5: checks[0].kind: missing required key"),
        (
            "  - kind: confusion_rate\n    true: cat\n    predicted: cat\n    max: 0.1\n",
            "suite.yaml:5: checks[0]: `true` and `predicted` must differ, both are 'cat'",
        ),
        (
            "  []\n",
            "suite.yaml:4: checks: expected a non-empty list of checks, found an empty list",
        ),
    ],
)
def test_bad_checks_give_one_line_with_file_line_and_key_path(
    tmp_path, monkeypatch, body, expected
):
    assert _error(tmp_path, monkeypatch, BASE + body) == expected


CHECK = "checks:\n  - kind: top1_accuracy\n    min: 0.5\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: r\ndata:\n  eval: [d\n" + CHECK,
            "suite.yaml:4: invalid YAML: expected ',' or ']', but got ':'",
        ),
        (
            "name: r\nchekcs: 1\ndata:\n  eval: d\n" + CHECK,
            "suite.yaml:2: chekcs: unknown key 'chekcs'; did you mean checks? (valid: name, description, model, data, baseline, defaults, checks, plugins)",
        ),
        (
            "name: [r]\ndata:\n  eval: d\n" + CHECK,
            "suite.yaml:1: name: expected a string, found a list",
        ),
        ("data:\n  eval: d\n" + CHECK, "suite.yaml:1: name: missing required key"),
        (
            "name: r\ndata:\n  eval: d\n",
            "suite.yaml:1: checks: missing required key (a list of checks)",
        ),
        (
            "name: r\ndata:\n  eval: {path: d, manifest: m.csv}\n" + CHECK,
            "suite.yaml:3: data.eval: give exactly one of `path` (a folder), `manifest` (a CSV file) or `shards` (tar files), found path and manifest",
        ),
        (
            "name: r\ndata:\n  eval: {shards: 'v-{09..3}.tar'}\n" + CHECK,
            "suite.yaml:3: data.eval: expected FIRST <= LAST in {09..3}, found 'v-{09..3}.tar'",
        ),
        (
            "name: r\ndata:\n  eval: {shards: 'v-{a..b}.tar', root: r}\n" + CHECK,
            "suite.yaml:3: data.eval: `root` belongs with `manifest`, not with `shards`",
        ),
        (
            "name: r\ndata:\n  eval: d\n  test: e\n" + CHECK,
            "suite.yaml:4: data.test: unknown key 'test' (valid: eval, train, calibration)",
        ),
        (
            "name: r\ndata:\n  eval: d\ndefaults:\n  confidence: 95\n" + CHECK,
            "suite.yaml:5: defaults.confidence: expected a number < 1, found 95",
        ),
        (
            "name: r\ndata:\n  eval: d\ndefaults: {interval: wald}\n" + CHECK,
            "suite.yaml:4: defaults.interval: expected 'wilson' or 'clopper_pearson', found 'wald'",
        ),
        (
            "name: r\ndata:\n  eval: d\ndefaults: {precision: fp8}\n" + CHECK,
            "suite.yaml:4: defaults.precision: expected 'fp32', 'bf16' or 'fp16', found 'fp8'",
        ),
        (
            "name: r\ndata:\n  eval: d\ndefaults: {precision: 16}\n" + CHECK,
            "suite.yaml:4: defaults.precision: expected 'fp32', 'bf16' or 'fp16', found 16",
        ),
        (
            "name: r\nmodel:\n  arch: resnet18\n  arch_kwargs: {num_classes: 3}\n  class_names: [a, b]\ndata:\n  eval: d\n"
            + CHECK,
            "suite.yaml:2: model: arch_kwargs.num_classes is 3 but class_names lists 2",
        ),
        ("- a\n- b\n", "suite.yaml:1: expected a mapping with name, data and checks, found a list"),
        ("", "suite.yaml:1: expected a mapping with name, data and checks, found nothing"),
    ],
)
def test_bad_suites_give_one_line_with_file_line_and_key_path(
    tmp_path, monkeypatch, text, expected
):
    assert _error(tmp_path, monkeypatch, text) == expected


def test_a_missing_file_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"nope\.yaml: suite file not found"):
        load_suite("nope.yaml")


class _PairParams(CheckParams):
    """Test-only: a kind that compares against a baseline."""

    needs_baseline: ClassVar[bool] = True
    example: ClassVar[dict] = {}

    def views(self) -> list[View]:
        """Clean logits of both models."""
        return [CLEAN, View(model="baseline")]


@pytest.fixture
def baseline_kind():
    """Register a test-only regression-like kind for one test, and remove it afterwards."""

    @register("test_paired", "test", _PairParams)
    def paired(evidence, params):
        """Test-only paired check."""
        return CheckResult("pass", "ok")

    yield "test_paired"
    del REGISTRY["test_paired"]


def test_a_kind_needing_a_baseline_needs_one(tmp_path, monkeypatch, baseline_kind):
    body = BASE + f"  - kind: top1_accuracy\n    min: 0.5\n  - kind: {baseline_kind}\n"
    assert _error(tmp_path, monkeypatch, body) == (
        "suite.yaml:7: checks[1].kind: check kind 'test_paired' compares against a baseline; "
        "add `baseline: CHECKPOINT` to the suite or pass --baseline"
    )
    given = _load(tmp_path, monkeypatch, body, baseline="deployed.pt")
    assert given.baseline == "deployed.pt" and given.requires_baseline()
    written = _load(tmp_path, monkeypatch, "baseline: old.pt\n" + body)
    assert written.baseline == "old.pt"
    assert _load(
        tmp_path, monkeypatch, "baseline: old.pt\n" + body, baseline="new.pt"
    ).baseline == ("new.pt")


def test_describe_checks_lists_every_kind_with_typed_parameters():
    rows = {row["kind"]: row for row in describe_checks()}
    assert set(rows) == set(REGISTRY)
    top1 = rows["top1_accuracy"]
    assert top1["family"] == "accuracy" and top1["summary"].startswith("Top-1 accuracy")
    params = {p["name"]: p for p in top1["parameters"]}
    assert params["min"] == {
        "name": "min",
        "type": "float",
        "required": True,
        "default": None,
        "constraints": ">= 0, <= 1",
        "description": "smallest acceptable accuracy",
    }
    assert params["gate_on"]["type"] == "'bound' | 'point'"
    assert params["gate_on"]["default"] == "bound" and not params["gate_on"]["required"]
    assert {p["name"]: p["type"] for p in rows["per_class_recall"]["parameters"]}["classes"] == (
        "'all' | list[str]"
    )
    assert top1["example"] == {"min": 0.5}


def test_validation_imports_neither_torch_nor_scipy(tmp_path):
    (tmp_path / "suite.yaml").write_text(GOOD)
    code = (
        "import sys; from qa.suite import load_suite; load_suite('suite.yaml'); "
        "print(sorted(m for m in ('torch', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_yaml_keeps_lines_through_flow_and_block_styles(tmp_path, monkeypatch):
    text = textwrap.dedent(
        """\
        name: r
        data: {eval: d}
        checks:
          - {kind: top1_accuracy, min: 0.5}
          - kind: macro_f1
            min: 0.5

            resamples: 5
        """
    )
    assert _error(tmp_path, monkeypatch, text) == (
        "suite.yaml:8: checks[1].resamples: expected a number >= 100, found 5"
    )
