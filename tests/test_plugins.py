"""Suite `plugins:`: modules a suite imports to register perturbations and check kinds, refused
unless trusted (they run code), recorded in the result, and keyed in the cache by their code."""

import hashlib
import json
import sys
import textwrap

import numpy as np
import pytest
from helpers import write_suite

import qa
from qa import checks, perturb, plugins
from qa.cli import main
from qa.errors import InputError
from qa.suite import load_suite
from qa.suite_errors import SuiteError

# writes a marker beside itself when imported, so a test can tell whether its code ran
DARKEN = """\
from pathlib import Path

from qa.perturb import register

Path(__file__).with_name("imported.marker").write_text("ran")


@register("darken", "digital")
def darken(images, severity, rng):
    return images * {factor}
"""
CHECK = """\
  - kind: corruption_accuracy
    perturbations: [darken]
    severities: [1]
    min: 0.0
"""


@pytest.fixture(autouse=True)
def _registries_as_they_were():
    """Each test's plugins leave nothing behind: their perturbations, check kinds and modules
    are forgotten, and sys.path is as it was."""
    saved = dict(perturb.PERTURBATIONS), dict(checks.REGISTRY), set(sys.modules), list(sys.path)
    yield
    for registry, before in zip((perturb.PERTURBATIONS, checks.REGISTRY), saved, strict=False):
        registry.clear()
        registry.update(before)
    for name in set(sys.modules) - saved[2]:
        del sys.modules[name]
    sys.path[:] = saved[3]


def _plugin(folder, name="darkening", factor="1.0", source=DARKEN):
    (folder / f"{name}.py").write_text(source.format(factor=factor))
    return folder / f"{name}.py"


def _suite(tmp_path, data, plugins="[darkening]", checks=CHECK):
    return write_suite(tmp_path / "suite.yaml", data, checks, head=f"plugins: {plugins}\n")


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_without_trust_a_suite_with_plugins_is_refused_and_the_plugin_never_runs(
    tmp_path, data, ckpt, capsys
):
    _plugin(tmp_path)
    suite = _suite(tmp_path, data, plugins="[darkening, other.mod]")
    out = tmp_path / "reports"
    assert main(["run", str(suite), str(ckpt), "--out", str(out), "--quiet"]) == 2
    assert _one_error(capsys) == (
        f"error: {suite}:2: plugins: expected --trust-plugins to import darkening, other.mod "
        "(plugins run code), found no --trust-plugins\n"
    )
    assert main(["validate", str(suite)]) == 2
    assert "expected --trust-plugins" in _one_error(capsys)
    assert not (tmp_path / "imported.marker").exists() and "darkening" not in sys.modules
    assert json.loads((out / "result.json").read_text())["error"]["kind"] == "input"
    with pytest.raises(InputError, match="expected --trust-plugins"):
        qa.run(suite, ckpt, cache_dir=None)


def test_a_trusted_plugin_beside_the_suite_registers_a_perturbation_a_check_gates_on(
    tmp_path, data, ckpt, capsys, monkeypatch
):
    plugin = _plugin(tmp_path)
    suite = _suite(tmp_path, data)
    monkeypatch.chdir(data)  # the plugin is found beside the suite, not in the current folder
    assert main(["validate", str(suite), "--trust-plugins"]) == 0
    assert capsys.readouterr().out == "ok: 1 checks\n"
    assert (tmp_path / "imported.marker").read_text() == "ran"
    assert str(tmp_path) not in sys.path  # on sys.path only while the plugins are imported
    out = tmp_path / "reports"
    argv = ["run", str(suite), str(ckpt), "--out", str(out), "--quiet", "--no-cache"]
    assert main([*argv, "--trust-plugins"]) == 0
    doc = json.loads((out / "result.json").read_text())
    assert list(doc["checks"][0]["details"]["curves"]) == ["darken"]
    assert doc["environment"]["plugins"] == [
        {
            "module": "darkening",
            "file": str(plugin),
            "sha256": hashlib.sha256(plugin.read_bytes()).hexdigest(),
        }
    ]
    assert main(["report", str(out / "result.json"), "--format", "html"]) == 0
    assert "darkening · sha256 " + doc["environment"]["plugins"][0]["sha256"][:16] in (
        capsys.readouterr().out
    )


def test_the_api_takes_trust_plugins_and_records_a_package_by_all_its_code(tmp_path, data, ckpt):
    package = tmp_path / "corruptions"
    package.mkdir()
    (package / "__init__.py").write_text("from corruptions import dark  # noqa: F401\n")
    _plugin(package, name="dark")
    suite = _suite(tmp_path, data, plugins="[corruptions]")
    result = qa.run(suite, ckpt, cache_dir=None, trust_plugins=True)
    assert result.passed
    first = result.to_dict()["environment"]["plugins"][0]
    assert (first["module"], first["file"]) == ("corruptions", str(package / "__init__.py"))
    assert first["sha256"] != hashlib.sha256((package / "__init__.py").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("plugins", "message"),
    [
        (
            "[my-plugin]",
            "plugins[0]: expected a module name (dotted identifiers, as `import` "
            "takes them), found 'my-plugin'",
        ),
        ("[.relative]", "plugins[0]: expected a module name"),
        ("darkening", "plugins: expected a list, found 'darkening'"),
        ("[1]", "plugins[0]: expected a string, found 1"),
    ],
)
def test_a_malformed_plugins_list_is_exit_2_with_one_line_before_anything_is_imported(
    tmp_path, data, capsys, plugins, message
):
    _plugin(tmp_path)
    suite = _suite(tmp_path, data, plugins=plugins)
    assert main(["validate", str(suite), "--trust-plugins"]) == 2
    assert _one_error(capsys).startswith(f"error: {suite}:2: {message}")
    assert not (tmp_path / "imported.marker").exists()


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("raise RuntimeError('kaput\\nmore')\n", "RuntimeError: kaput"),
        ("import sys\nsys.exit('bye')\n", "SystemExit: bye"),
        (
            "import nowhere_to_be_found\n",
            "ModuleNotFoundError: No module named 'nowhere_to_be_found'",
        ),
        (DARKEN.replace('"darken"', '"fog"'), "ValueError: perturbation 'fog' is registered twice"),
    ],
)
def test_a_plugin_that_fails_to_import_is_exit_2_with_one_line(
    tmp_path, data, ckpt, capsys, source, reason
):
    _plugin(tmp_path, name="broken", source=source.replace("{", "{{").replace("}", "}}"))
    suite = _suite(tmp_path, data, plugins="[darkening, broken]")
    _plugin(tmp_path)
    argv = ["run", str(suite), str(ckpt), "--out", str(tmp_path / "r"), "--trust-plugins"]
    assert main(argv) == 2
    assert _one_error(capsys) == f"error: {suite}:2: plugins[1]: cannot import 'broken': {reason}\n"


def test_a_plugin_that_is_nowhere_is_exit_2_naming_it(tmp_path, data, capsys):
    suite = _suite(tmp_path, data, plugins="[not_a_module]")
    assert main(["validate", str(suite), "--trust-plugins"]) == 2
    assert _one_error(capsys) == (
        f"error: {suite}:2: plugins[0]: cannot import 'not_a_module': "
        "ModuleNotFoundError: No module named 'not_a_module'\n"
    )


def test_without_its_plugin_a_suite_naming_its_perturbation_is_refused(tmp_path, data):
    suite = write_suite(tmp_path / "suite.yaml", data, CHECK)
    with pytest.raises(SuiteError, match="unknown perturbation 'darken'"):
        load_suite(suite)


def test_a_plugin_can_register_a_check_kind(tmp_path, data):
    source = textwrap.dedent(
        """\
        from typing import ClassVar

        from qa.checks import CheckParams, CheckResult, register


        class Params(CheckParams):
            example: ClassVar[dict] = {}


        @register("always_passes", "accuracy", Params)
        def always_passes(evidence, p):
            \"\"\"Passes.\"\"\"
            return CheckResult("pass", "fine")
        """
    )
    _plugin(tmp_path, name="kinds", source=source.replace("{", "{{").replace("}", "}}"))
    suite = _suite(tmp_path, data, plugins="[kinds]", checks="- kind: always_passes\n")
    assert load_suite(suite, trust_plugins=True).checks[0].kind == "always_passes"


def test_an_edited_plugin_never_reads_back_the_views_of_its_earlier_code(tmp_path, data, ckpt):
    """The cache keys a plugin perturbation's views on its code: after an edit (identity to
    black images), the run computes the view again instead of reading the identity's logits."""
    suite = _suite(tmp_path, data)
    options = {"cache_dir": tmp_path / "cache", "trust_plugins": True}

    def darkened_and_clean(factor: str):
        _plugin(tmp_path, factor=factor)
        for name in ("darken",):
            perturb.PERTURBATIONS.pop(name, None)
        sys.modules.pop("darkening", None)
        qa.run(suite, ckpt, save_predictions=tmp_path / "p.npz", **options)
        with np.load(tmp_path / "p.npz") as saved:
            return saved["candidate/eval/darken-s1/logits.npy"], saved[
                "candidate/eval/clean/logits.npy"
            ]

    same, clean = darkened_and_clean("1.0")
    np.testing.assert_array_equal(same, clean)
    black, clean = darkened_and_clean("0.0 * 1.0")  # another size: no stale bytecode either
    assert np.allclose(black, black[0]) and not np.allclose(black, clean)


def test_a_package_is_digested_by_every_python_file_in_it(tmp_path):
    package = tmp_path / "corruptions"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "ops.py").write_text("FACTOR = 1\n")
    assert plugins.import_plugins(["corruptions"], tmp_path / "suite.yaml") == []
    before = plugins.module_digest(sys.modules["corruptions"])
    (package / "sub" / "ops.py").write_text("FACTOR = 2\n")
    now = plugins.module_digest.__wrapped__(sys.modules["corruptions"])  # uncached
    assert now != before
    assert plugins.module_digest(sys.modules["corruptions"]) == before  # the code imported


def test_a_perturbation_is_keyed_on_its_code_unless_it_is_qas_own():
    assert plugins.perturbation_code("gaussian_noise") is None
    made = {}
    for factor in ("0.5", "0.25"):  # defined where no file is, as in a notebook cell
        space = {"__name__": "cell"}
        exec(f"def darken(images, severity, rng):\n    return images * {factor}\n", space)
        perturb.register_perturbation(f"darken_{len(made)}", space["darken"], "digital")
        made[factor] = plugins.perturbation_code(f"darken_{len(made)}")
    assert None not in made.values() and made["0.5"] != made["0.25"]
