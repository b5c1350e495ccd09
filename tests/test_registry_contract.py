"""Contract tests over every registered check kind: a new kind is tested by these for free.

Every kind's parameter class must define `example: ClassVar[dict]`: minimal valid parameters.
The random evidence names its classes "0", "1", ... (as a model without class names does),
so an example that names classes uses those.
"""

import pkgutil

import numpy as np
import pytest
import yaml
from pydantic import BaseModel, ValidationError

import qa.checks
from qa.checks import FAMILY_MODULES, REGISTRY, CheckResult, load_all
from qa.evidence import Evidence, View
from qa.runner import STATUSES
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
    result = spec.fn(evidence, params)
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
    again = spec.fn(_random_evidence(views), params)
    assert (again.status, again.message) == (result.status, result.message), "not deterministic"


def test_every_check_module_is_a_listed_family():
    modules = {f"qa.checks.{m.name}" for m in pkgutil.iter_modules(qa.checks.__path__)}
    assert modules == set(FAMILY_MODULES), "list every family module in FAMILY_MODULES"


@pytest.mark.parametrize("kind", KINDS)
def test_example_loads_from_a_yaml_suite(kind, tmp_path):
    """Strict validation from YAML types: a tuple-typed parameter, say, could never be written."""
    entry = {"kind": kind, **REGISTRY[kind].params.example}
    suite = {"name": "t", "data": {"eval": "d"}, "baseline": "b.pt", "checks": [entry]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    (check,) = load_suite(path).checks
    assert check.params == REGISTRY[kind].params(**REGISTRY[kind].params.example)
