"""JSON Schemas (draft 2020-12) of a suite file and of result.json (`qa schema suite|result`).

Both are generated from the pydantic models that validate those files, so that a schema cannot
drift from its validator: the suite's from `qa.suite`'s models and the parameter model of every
registered check kind, result.json's from `qa.report.document.ResultDocument` (schema
version 2, what `qa run` writes). A check entry is its common keys (kind, name, severity,
slice) beside that kind's own parameters: one `if kind == K then ...` branch per kind, closed
to unknown keys like the validator. The validators stay the authority: what spans keys (exactly
one of `path` or `manifest`, unique check names, a baseline for the checks that need one) and
YAML's refusal of non-finite numbers are theirs alone, so a file can satisfy the schema and
still be refused by `qa validate`.
"""

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from qa.checks import CheckKind, CheckParams, load_all
from qa.report.document import ResultDocument
from qa.report.json_report import SCHEMA_VERSION
from qa.suite import CheckHeader, CheckSpec, Suite

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def suite_schema() -> dict:
    """The JSON Schema of a suite file, with a branch for every kind `qa checks` lists."""
    registry = load_all()
    kinds = sorted(registry)
    params = list(dict.fromkeys(registry[k].params for k in kinds))  # kinds may share a model
    models: list[type[BaseModel]] = [Suite, CheckHeader, CheckSpec, CheckParams, *params]
    refs, top = models_json_schema([(m, "validation") for m in models])
    defs = top["$defs"]

    def take(model: type[BaseModel]) -> dict:
        """The model's definition, removed from $defs: it is inlined or not wanted."""
        return defs.pop(refs[(model, "validation")]["$ref"].rsplit("/", 1)[1])

    suite, header = take(Suite), take(CheckHeader)["properties"]
    own = {model: take(model) for model in params}
    take(CheckSpec)  # the validated form of an entry (its parameters apart): no file holds it
    take(CheckParams)
    suite["properties"]["checks"]["items"] = {"$ref": "#/$defs/Check"}
    defs["Check"] = {
        "description": "One check: `kind`, the keys every check has, and the kind's parameters.",
        "type": "object",
        "properties": {"kind": {**header["kind"], "enum": kinds}},
        "required": ["kind"],
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": k}}, "required": ["kind"]},
                "then": _entry(registry[k], header, own[registry[k].params]),
            }
            for k in kinds
        ],
    }
    return {
        "$schema": DIALECT,
        **suite,
        "title": "qa suite",
        "description": "A suite file (YAML) of `qa run` and `qa validate`: what to gate, on what.",
        "$defs": defs,
    }


def _entry(spec: CheckKind, header: dict, params: dict) -> dict:
    """One kind's check entry: the common keys, `kind` fixed to it, then its own parameters."""
    return {
        "title": spec.kind,
        "description": spec.summary,
        "type": "object",
        "properties": {
            **header,
            "kind": {**header["kind"], "const": spec.kind},
            **params.get("properties", {}),
        },
        "required": ["kind", *params.get("required", [])],
        "additionalProperties": False,
    }


def result_schema() -> dict:
    """The JSON Schema of the result.json `qa run` writes (what `qa report` reads back)."""
    schema = ResultDocument.model_json_schema()
    version = {"const": SCHEMA_VERSION, "description": "bumped when a field is removed or renamed"}
    return {
        "$schema": DIALECT,
        **schema,
        "title": "qa result.json",
        "description": "Every decision of a `qa run`, or the error that stopped it.",
        "properties": {"schema_version": version, **schema["properties"]},
        "required": ["schema_version", *schema["required"]],
    }


SCHEMAS = {"suite": suite_schema, "result": result_schema}
