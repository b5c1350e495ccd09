"""The suite: a YAML file declaring what to gate, read by `load_suite` and nothing else.

    name: release                          # required
    description: ...                       # optional
    plugins: [my_perturbations]            # optional: modules to import first (qa.plugins);
                                           #   they run code: refused unless trusted
    model: {arch: resnet50, arch_kwargs: {num_classes: 10}, class_names: [...],
            preprocessing: {resize: 256, crop: 224, mean: [...], std: [...]}}
                                           # optional: only for a plain state_dict checkpoint;
                                           # arch: timm/NAME for a timm model, whose pretrained
                                           # config fills preprocessing keys left out
    data:
      eval: data/digits/test               # a folder (ImageFolder), {path: DIR},
      train: data/digits/train             #   {manifest: FILE.csv, root: DIR}, or tar shards
                                           #   {shards: "val-{000000..000049}.tar"} (qa.shards)
      calibration: data/digits/val         # optional, for fitting a temperature
    baseline: checkpoints/baseline.pt      # optional; `qa run --baseline` overrides it
    defaults: {confidence: 0.95, batch_size: 256, interval: wilson}  # or clopper_pearson
                                           # corruption_ladder: auto, imagenet_c or cifar10_c
                                           # precision: fp32 (default), bf16 or fp16 (CUDA);
                                           #   `qa run --precision` overrides it
    checks:
      - kind: top1_accuracy                # a registered kind (`qa checks` lists them)
        name: overall accuracy             # optional, default: the kind
        severity: fail                     # fail (default) or warn
        slice: {column: camera, equals: A} # optional: {column, equals: V} or {column, in: [..]}
        slices: {column: camera}           # optional: gate every value of the column, Holm-
                                           #   corrected (qa.slicing); min_size: N (default 1)
        min: 0.9                           # the kind's own parameters, beside the common keys

Every mapping rejects unknown keys, and keys are always text (`true:` is the key "true"). Values are validated strictly: `min: "0.9"` is a string,
not a number. Numbers such as 1e-3 are read as numbers (YAML 1.2), not as strings.
Relative paths (data, manifest, root, shards, baseline) resolve against the folder the suite
file is in, as docker-compose and pytest resolve theirs: `eval: ../data/test` in
`suites/release.yaml` is `suites/../data/test` from any current folder (qa.suite_paths).
Absolute paths stay as written; `qa run --baseline` is a command-line path, from the current
folder.

A check without a name is named after its kind; further unnamed checks of the same kind are
named `kind#2`, `kind#3`, ... Two checks given the same explicit name are an error.
A kind that compares against a baseline (`needs_baseline`) is an error in a suite without
`baseline:`, unless the caller passes one (`load_suite(path, baseline=...)`, from --baseline).

Every error is one line: `FILE:LINE: KEY.PATH: expected ..., found ...`; a suite's problems are
collected, not stopped at (qa.suite_errors.SuiteError: `qa validate` prints them all, in line
order, and checks that the data and baseline paths exist; `qa run` names the first and how
many more).
`plugins:` are imported before the checks are validated, so that the perturbations and check
kinds they register can be named; a suite with plugins is refused (one problem, at `plugins:`)
unless the caller trusts them (`load_suite(..., trust_plugins=True)`, from --trust-plugins).
A hostile file is refused before anything is built from it: a suite is at most 256 KiB, nests
at most 64 levels and holds at most 100,000 values with YAML aliases expanded; a non-finite
number (.inf, -.inf, .nan) is refused wherever it is written (qa.suite_yaml.parse_yaml).
"""

import difflib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
)

from qa import plugins as plugin_modules
from qa import suite_errors as err
from qa import suite_yaml
from qa.checks import CheckParams, load_all, load_kinds
from qa.errors import InputError
from qa.evidence import View
from qa.suite_models import DataConfig, Defaults, ModelSpec, Slice, Slices, Strict
from qa.suite_models import DataSpec as DataSpec  # re-exported: `qa.suite.DataSpec` is public
from qa.suite_paths import missing_paths, resolve_paths

COMMON_KEYS = ("kind", "name", "severity", "slice", "slices")
ModuleName = Annotated[
    str,
    AfterValidator(plugin_modules.module_name),
    Field(
        json_schema_extra={"pattern": plugin_modules.MODULE_NAME},
        description="an importable module's name",
    ),
]


class CheckHeader(Strict):
    """The keys every check entry has, whatever its kind; the kind's parameters sit beside them."""

    kind: str = Field(min_length=1, description="a registered check kind (`qa checks` lists them)")
    name: str | None = Field(
        None, min_length=1, description="unique in the suite; default: the kind (kind#2, ...)"
    )
    severity: Literal["fail", "warn"] = Field(
        "fail", description="fail blocks the run; warn is reported, blocks only with --strict"
    )
    slice: Slice | None = Field(None, description="gate only the eval samples of this slice")
    slices: Slices | None = Field(
        None, description="gate every value of a column as a slice, Holm-corrected"
    )


class CheckSpec(Strict):
    """One check of the suite: its kind, unique name, severity, optional slice or slices,
    parameters."""

    kind: str
    name: str
    severity: Literal["fail", "warn"] = "fail"
    slice: Slice | None = None
    slices: Slices | None = None
    params: SerializeAsAny[CheckParams]

    def views(self) -> list[View]:
        """What the engine must compute for this check."""
        return self.params.views()


class Suite(Strict):
    """A validated suite; build it with `load_suite`."""

    name: str = Field(min_length=1, description="the suite's name, shown in every report")
    description: str = ""
    model: ModelSpec | None = Field(None, description="only for a plain state_dict checkpoint")
    data: DataConfig
    baseline: str | None = Field(
        None, min_length=1, description="checkpoint to compare against; --baseline overrides it"
    )
    defaults: Defaults = Field(default_factory=Defaults)
    checks: list[CheckSpec] = Field(min_length=1, description="the gates, in report order")
    plugins: list[ModuleName] = Field(
        default_factory=list,
        description="modules to import before the checks are validated, to register "
        "perturbations and check kinds; they run code, so they need --trust-plugins",
    )

    def requires_baseline(self) -> bool:
        """Whether some check compares against a baseline model."""
        return any(c.params.needs_baseline for c in self.checks)


class _Plugins(Strict):
    """The `plugins:` key alone, validated before the rest: its modules are imported first."""

    model_config = ConfigDict(extra="ignore")
    plugins: list[ModuleName] = Field(default_factory=list)


def load_suite(
    path: str | Path,
    baseline: str | Path | None = None,
    check_paths: bool = False,
    trust_plugins: bool = False,
    cache_dir: str | Path | None = None,
) -> Suite:
    """Read, validate and return the suite at `path`: the only way a suite enters qa.

    Data and baseline paths come back resolved against the suite file's folder
    (qa.suite_paths). `baseline` (the command line's --baseline, a path from the current
    folder) replaces the suite's `baseline:`. With `check_paths` (`qa validate`), a data path
    or baseline with nothing there is a problem too. The suite's `plugins:` are imported
    first, with `trust_plugins` only (else the suite is refused at that key). `cache_dir`, a
    run's cache folder, spares constructing a passthrough expectation GX built before
    (qa.gx.check_expectation). Raises SuiteError, an InputError, naming every problem (file,
    line, key path, what was expected and found).
    """
    data, lines, read = suite_yaml.parse_yaml(path)
    if not isinstance(data, dict):
        raise InputError(
            f"{path}:1: expected a mapping with name, data and checks, found {err.found(data)}"
        )
    _load_plugins(data, path, lines, read, trust_plugins)
    raw = data.get("checks")
    kinds = [e.get("kind") for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
    registry = load_kinds(kinds) if kinds else load_all()
    specs, problems = _check_specs(data, registry, {"cache_dir": cache_dir})
    problems += _cross_problems(specs, baseline is not None or "baseline" in data)
    if check_paths:
        problems += missing_paths(data, path)
    try:
        suite = Suite.model_validate({**data, "checks": [s for _, s in specs]}, strict=True)
    except ValidationError as exc:
        # `checks` was validated above, entry by entry, against each kind's own parameters
        problems += err.problems(exc, Suite, (), data, ignore=("checks",))
    if problems or read:  # a duplicate key or .inf is the problem at its place, said once
        said = {at for at, _ in read}
        raise err.SuiteError(path, read + [p for p in problems if p[0] not in said], lines)
    suite = resolve_paths(suite, path)
    if baseline is not None:
        suite = suite.model_copy(update={"baseline": str(baseline)})
    return suite


def _load_plugins(data: dict, path, lines: dict, read: list, trust: bool) -> None:
    """Import the suite's `plugins:` (qa.plugins), if it names any and `trust` allows it; else
    raise SuiteError with the problem, alone: the rest cannot be validated without them."""
    try:
        names = _Plugins.model_validate(data, strict=True).plugins
    except ValidationError as exc:
        raise err.SuiteError(path, read + err.problems(exc, _Plugins, (), data), lines) from None
    if not names:
        return
    if not trust:
        problem = (
            f"expected --trust-plugins to import {', '.join(names)} (plugins run code), "
            "found no --trust-plugins"
        )
        raise err.SuiteError(path, [(("plugins",), problem)], lines)
    failures = plugin_modules.import_plugins(names, path)
    if failures:
        raise err.SuiteError(path, [(("plugins", i), why) for i, why in failures], lines)


def _check_specs(data: dict, registry, context: dict) -> tuple[list[tuple[int, CheckSpec]], list]:
    """Validate every check entry: common keys, kind, and the kind's parameters (with the
    validation `context`). The valid ones come back with their index in the list."""
    raw = data.get("checks", err.MISSING)
    at = ("checks",)
    if raw is err.MISSING:
        return [], [(at, "missing required key (a list of checks)")]
    if not isinstance(raw, list) or not raw:
        return [], [(at, f"expected a non-empty list of checks, found {err.found(raw)}")]
    specs, problems, names = [], [], _names(raw)
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            problems.append(((*at, i), f"expected a mapping with `kind`, found {err.found(entry)}"))
            continue
        common = {k: v for k, v in entry.items() if k in COMMON_KEYS}
        try:
            header = CheckHeader.model_validate(common, strict=True)
        except ValidationError as exc:
            problems += err.problems(exc, CheckHeader, (*at, i), data)
            continue
        if header.kind not in registry:
            problems.append(((*at, i, "kind"), unknown_kind(header.kind, list(registry))))
            continue
        model = registry[header.kind].params
        own = {k: v for k, v in entry.items() if k not in COMMON_KEYS}
        try:
            params = model.model_validate(own, strict=True, context=context)
        except ValidationError as exc:
            problems += err.problems(exc, model, (*at, i), data, header.kind)
            continue
        specs.append((i, CheckSpec(**{**dict(header), "name": names[i], "params": params})))
    return specs, problems


def unknown_kind(kind: str, known: list[str]) -> str:
    """The message for a check kind that is not registered: the kind meant, or every kind."""
    near = difflib.get_close_matches(kind, known, n=1)
    hint = f"did you mean {near[0]}?" if near else f"known kinds: {', '.join(known)}"
    return f"unknown check kind {kind!r}; {hint}"


def _names(raw: list) -> list[str | None]:
    """Each entry's final name: its own, or its kind's with #2, #3... for repeats."""
    given = [e.get("name") if isinstance(e, dict) else None for e in raw]
    used = {n for n in given if isinstance(n, str)}
    tried: dict[str, int] = {}  # per kind, the last number tried: every smaller one is taken
    names = []
    for entry, name in zip(raw, given, strict=True):
        if name is None and isinstance(entry, dict) and isinstance(entry.get("kind"), str):
            kind = entry["kind"]
            n = tried.get(kind, 0) + 1
            name = kind if n == 1 else f"{kind}#{n}"
            while name in used:
                n += 1
                name = f"{kind}#{n}"
            tried[kind] = n
            used.add(name)
        names.append(name)
    return names


def _cross_problems(specs: list[tuple[int, CheckSpec]], has_baseline: bool) -> list:
    """Rules that span keys, over the valid check entries (index, spec): unique check names,
    `slices` only on a kind that reads the eval samples' model outputs, a baseline for checks
    that need one."""
    problems, seen = [], set()
    for i, check in specs:
        if check.name in seen:
            problems.append(
                (("checks", i, "name"), f"duplicate check name {check.name!r}; names are unique")
            )
        seen.add(check.name)
        if check.slices is not None and not any(
            v.split == "eval" and v.kind != "profile" for v in check.views()
        ):
            problems.append(
                (
                    ("checks", i, "slices"),
                    f"check kind {check.kind!r} reads no model outputs on eval samples, so "
                    "every slice would be judged on the whole data; remove `slices`",
                )
            )
        if check.params.needs_baseline and not has_baseline:
            problems.append(
                (
                    ("checks", i, "kind"),
                    f"check kind {check.kind!r} compares against a baseline; "
                    "add `baseline: CHECKPOINT` to the suite or pass --baseline",
                )
            )
    return problems
