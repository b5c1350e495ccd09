"""Contract tests over every registered check kind: a new kind is tested by these for free.

Every kind's parameter class must define `example: ClassVar[dict]`: minimal valid parameters.
The random evidence names its classes "0", "1", ... (as a model without class names does),
so an example that names classes uses those.
"""

import importlib
import json
import pkgutil
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
import yaml
from pydantic import BaseModel, ValidationError

import qa.checks
from qa.checks import (
    FAMILY_MODULES,
    KIND_MODULES,
    REGISTRY,
    STATUSES,
    CheckParams,
    CheckResult,
    Stop,
    load_all,
    register,
)
from qa.checks import params as shared
from qa.errors import InputError
from qa.evidence import CLEAN, Evidence, View
from qa.runner import run_checks
from qa.suite import COMMON_KEYS, load_suite

KINDS = sorted(load_all())
CLASSES = 4


def _random_evidence(views: list[View], n: int = 160, seed: int = 0) -> Evidence:
    """Random logits for every logits view asked for; labels for every split they read."""
    rng = np.random.default_rng(seed)
    sizes = {"eval": n}
    split_labels = {}
    arrays = {}
    for view in views:
        if view.kind != "logits":
            continue
        if view.split not in sizes:
            sizes[view.split] = n
            split_labels[view.split] = rng.integers(0, CLASSES, n)
        arrays[view] = rng.normal(0, 2, (sizes[view.split], CLASSES)).astype(np.float32)
    return Evidence(
        class_names=[str(i) for i in range(CLASSES)],
        labels=rng.integers(0, CLASSES, n),
        sample_ids=[f"s{i}" for i in range(n)],
        arrays=arrays,
        metadata={"group": rng.integers(0, 2, n)},
        split_labels=split_labels,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_kind_is_documented(kind):
    spec = REGISTRY[kind]
    assert spec.summary, f"{kind}: the check function needs a docstring (its summary)"
    assert spec.params.__doc__, f"{kind}: its parameter class needs a docstring"
    for name, field in spec.params.model_fields.items():
        assert field.description, f"{kind}.{name}: give the parameter a description"
    assert not set(spec.params.model_fields) & set(COMMON_KEYS), (
        f"{kind}: a parameter name collides with a suite key {COMMON_KEYS}"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_params_have_a_valid_example_and_reject_unknown_keys(kind):
    params = REGISTRY[kind].params
    assert isinstance(getattr(params, "example", None), dict), (
        f"{kind}: define `example: ClassVar[dict]` on {params.__name__}"
    )
    assert isinstance(params.model_validate(params.example, strict=True), BaseModel)
    with pytest.raises(ValidationError, match="surely_not_a_parameter"):
        params.model_validate({**params.example, "surely_not_a_parameter": 1}, strict=True)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_runs_on_random_evidence_and_shows_its_numbers(kind):
    spec = REGISTRY[kind]
    params = spec.params.model_validate(spec.params.example, strict=True)
    views = params.views()
    assert views and all(isinstance(v, View) for v in views)
    evidence = _random_evidence(views)
    result = spec.run(evidence, params)
    assert isinstance(result, CheckResult)
    assert result.status in STATUSES
    assert isinstance(result.message, str) and result.message
    if all(v.kind == "logits" for v in views):
        assert result.status != "error", f"{kind} errored on sound evidence: {result.message}"
    if result.status in ("pass", "fail"):
        assert result.threshold is not None, f"{kind}: a gate must say what it compared"
    if result.threshold is not None:
        assert set(result.threshold) == {"metric", "op", "value"}
        assert result.threshold["op"] in (">=", "<=")
        assert result.threshold["metric"] in result.metrics
    again = spec.run(_random_evidence(views), params)
    assert (again.status, again.message) == (result.status, result.message), "not deterministic"


def test_every_check_module_is_a_listed_family():
    """A module that registers kinds is listed, else torch-free commands would not see them."""
    modules = {f"qa.checks.{m.name}" for m in pkgutil.iter_modules(qa.checks.__path__)}
    assert set(FAMILY_MODULES) <= modules
    for name in sorted(modules):
        importlib.import_module(name)
    registering = {spec.fn.__module__ for spec in REGISTRY.values()}
    assert registering <= set(FAMILY_MODULES), "list every family module in FAMILY_MODULES"


def test_kind_modules_names_where_each_of_qas_kinds_is_registered():
    ours = {
        k: spec.fn.__module__
        for k, spec in REGISTRY.items()
        if spec.fn.__module__ in FAMILY_MODULES
    }
    assert ours == KIND_MODULES


def test_a_suite_imports_only_its_own_kinds_families(tmp_path):
    """A suite of accuracy and calibration gates leaves the other families unimported; a
    kind qa does not have still gets every kind in its message."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: s\ndata: {eval: data}\nchecks:\n- {kind: top1_accuracy, min: 0.5}\n- {kind: nll, max: 1}\n"
    )
    code = (
        "import json, sys\nfrom qa.suite import load_suite\n"
        f"load_suite({str(suite)!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('qa.checks.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    loaded = {m for m in json.loads(out.stdout) if m in FAMILY_MODULES}
    assert loaded == {"qa.checks.accuracy", "qa.checks.calibration"}
    suite.write_text("name: s\ndata: {eval: data}\nchecks:\n- {kind: top1_acuracy, min: 0.5}\n")
    with pytest.raises(InputError, match="did you mean top1_accuracy"):
        load_suite(suite)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_is_registered_through_the_one_decorator(kind):
    """Its function is the module-level function that `@register` decorated, nothing wrapped."""
    fn = REGISTRY[kind].fn
    assert fn.__module__ in FAMILY_MODULES
    assert fn.__qualname__ == fn.__name__, f"{kind}: register a module-level function"
    assert getattr(sys.modules[fn.__module__], fn.__name__) is fn, f"{kind}: no wrapper"


SHARED_KEYS = {
    "gate_on": shared.GateOn,
    "resamples": shared.Resamples,
    "seed": shared.Seed,
    "bins": shared.Bins,
    "binning": shared.Binning,
    "perturbations": shared.Perturbations,
    "severities": shared.Severities,
    "show": shared.Show,
    "max_failed": shared.MaxFailed,
    "max_distance": shared.MaxDistance,
}


@pytest.mark.parametrize("key", sorted(SHARED_KEYS))
def test_a_shared_key_is_validated_the_same_way_in_every_kind(key):
    """Declared once in qa.checks.params: same type and constraints wherever it appears."""

    class Reference(CheckParams):
        value: SHARED_KEYS[key]

    expected = Reference.model_fields["value"]
    users = [spec for spec in REGISTRY.values() if key in spec.params.model_fields]
    assert users, key
    for spec in users:
        field = spec.params.model_fields[key]
        assert (field.annotation, field.metadata) == (expected.annotation, expected.metadata), (
            f"{spec.kind}.{key}: declare it with its type from qa.checks.params"
        )
    if key == "gate_on":  # one vocabulary, whose default is the conservative bound
        assert {spec.params.model_fields[key].default for spec in users} == {"bound"}


class _StopParams(CheckParams):
    """Test-only: which status to stop with."""

    status: str
    example: ClassVar[dict] = {"status": "skip"}


def _helper(status: str):
    raise Stop(status, f"stopped with {status}: a helper said why")


@pytest.fixture
def stopping_kind():
    @register("test_stop", "test", _StopParams)
    def stopping(evidence, p):
        """Stops in a helper."""
        _helper(p.status)

    yield
    del REGISTRY["test_stop"]


@pytest.mark.parametrize("status", ["error", "skip"])
def test_stop_becomes_that_status_and_message_never_a_traceback(
    stopping_kind, status, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    checks = f"  - kind: test_stop\n    status: {status}\n"
    (tmp_path / "suite.yaml").write_text(f"name: t\ndata:\n  eval: d\nchecks:\n{checks}")
    evidence = Evidence(["0", "1"], np.array([0, 1]), ["a", "b"], {CLEAN: np.eye(2)})
    (outcome,) = run_checks(load_suite("suite.yaml"), evidence)
    assert (outcome.status, outcome.result.message) == (
        status,
        f"stopped with {status}: a helper said why",
    )
    assert outcome.result.details == {}


def test_a_check_cannot_stop_with_a_judgement():
    for status in ("pass", "fail", "warn"):
        with pytest.raises(ValueError, match="'error' or 'skip'"):
            Stop(status, "a judgement is returned, never raised")


@pytest.mark.parametrize("kind", KINDS)
def test_example_loads_from_a_yaml_suite(kind, tmp_path):
    """Strict validation from YAML types: a tuple-typed parameter, say, could never be written."""
    entry = {"kind": kind, **REGISTRY[kind].params.example}
    suite = {"name": "t", "data": {"eval": "d"}, "baseline": "b.pt", "checks": [entry]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    (check,) = load_suite(path).checks
    assert check.params == REGISTRY[kind].params(**REGISTRY[kind].params.example)
