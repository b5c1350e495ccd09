"""The pytest plugin: `pytest --qa-suite S --qa-checkpoint C` turns each check into a test item."""

from dataclasses import replace
from importlib.metadata import entry_points

import pytest
from helpers import save_tiny, write_data, write_suite

from qa.checks import CheckResult, load_all

pytest_plugins = ["pytester"]

CHECKS = """\
- {kind: top1_accuracy, name: accurate_enough, min: 0.0}
- {kind: top1_accuracy, name: too_strict, min: 0.99}
- {kind: top1_accuracy, name: only_warns, min: 0.99, severity: warn}
- {kind: topk_accuracy, name: crashes, k: 3, min: 0.5}
- {kind: macro_f1, name: does_not_apply, min: 0.5}
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny suite, data and checkpoint; qa imported whole before pytester snapshots modules.

    pytester's in-process runs drop the modules they imported, and re-importing a check
    module would register its kinds twice; importing them here keeps them across runs.
    """
    import qa.application
    import qa.report.html  # noqa: F401

    load_all()
    root = tmp_path_factory.mktemp("plugin")
    data = write_data(root / "digits", per_class=3)
    return {
        "suite": write_suite(root / "suite.yaml", data, CHECKS),
        "ckpt": save_tiny(root / "cand.pt", seed=4),
        "root": root,
    }


@pytest.fixture
def rigged(monkeypatch):
    """Two real check kinds made to crash and to skip, so all five statuses occur."""

    def crash(evidence, params):
        raise ZeroDivisionError("division by zero inside the check")

    def not_applicable(evidence, params):
        return CheckResult("skip", "skip: nothing to compare against")

    registry = load_all()
    monkeypatch.setitem(registry, "topk_accuracy", replace(registry["topk_accuracy"], fn=crash))
    monkeypatch.setitem(registry, "macro_f1", replace(registry["macro_f1"], fn=not_applicable))


def test_the_plugin_is_registered_through_the_pytest11_entry_point():
    plugins = {e.name: e.value for e in entry_points(group="pytest11")}
    assert plugins.get("qa") == "qa.pytest_plugin"


def test_each_check_is_a_test_with_its_status(pytester, inputs, rigged):
    out = inputs["root"] / "reports"
    argv = ["--qa-suite", inputs["suite"], "--qa-checkpoint", inputs["ckpt"], "--qa-out", out]
    result = pytester.runpytest(*map(str, argv), "-rA", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2, skipped=1, warnings=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*PASSED*suite.yaml::accurate_enough*",
            "*PASSED*suite.yaml::only_warns*",
            "*SKIPPED*suite.yaml: does_not_apply: skip: nothing to compare against",
            "*FAILED*suite.yaml::too_strict*",
            "*FAILED*suite.yaml::crashes*",
        ]
    )
    assert "decision: 0.0223 >= 0.99" in text  # the failure text is the check's own
    assert "could not be evaluated: " in text and "ZeroDivisionError" in text
    assert "QACheckWarning: only_warns: top-1 accuracy" in text
    assert "Traceback" not in text and "qa/pytest_plugin.py:" not in text
    assert (out / "result.json").is_file() and (out / "summary.md").is_file()


def test_the_suite_runs_once_for_all_its_checks(pytester, inputs, monkeypatch):
    import qa.application

    calls = []
    original = qa.application.build_evidence
    monkeypatch.setattr(
        qa.application, "build_evidence", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    result = pytester.runpytest(
        "--qa-suite", str(inputs["suite"]), "--qa-checkpoint", str(inputs["ckpt"])
    )
    assert result.parseoutcomes()["passed"] + result.parseoutcomes()["failed"] >= 4
    assert calls == [1]


def test_a_warning_fails_when_warnings_are_errors(pytester, inputs):
    suite = write_suite(
        inputs["root"] / "warn.yaml",
        inputs["root"] / "digits",
        "- {kind: top1_accuracy, min: 0.99, severity: warn}\n",
    )
    argv = ["--qa-suite", str(suite), "--qa-checkpoint", str(inputs["ckpt"])]
    pytester.runpytest(*argv).assert_outcomes(passed=1, warnings=1)
    strict = pytester.runpytest(*argv, "-W", "error::qa.pytest_plugin.QACheckWarning")
    strict.assert_outcomes(failed=1)


def test_bad_input_is_one_collection_error_line(pytester, inputs):
    result = pytester.runpytest(
        "--qa-suite", str(inputs["suite"]), "--qa-checkpoint", str(inputs["root"] / "nope.pt")
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest's code for collection errors
    result.assert_outcomes(errors=1)
    errors = [line for line in result.outlines if "nope.pt: checkpoint not found" in line]
    assert errors and errors[0].startswith("qa: ")
    assert "Traceback" not in result.stdout.str()


def test_without_qa_suite_the_plugin_does_nothing(pytester):
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins:*qa-*", "collected 1 item"])  # loaded, and inert


def test_qa_suite_without_a_checkpoint_is_a_usage_error(pytester, inputs):
    result = pytester.runpytest("--qa-suite", str(inputs["suite"]))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--qa-suite needs --qa-checkpoint CHECKPOINT"])


def test_a_test_path_given_with_qa_suite_is_collected_too(pytester, inputs):
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    suite = write_suite(
        inputs["root"] / "one.yaml", inputs["root"] / "digits", "- {kind: top1_accuracy, min: 0}\n"
    )
    argv = ["--qa-suite", str(suite), "--qa-checkpoint", str(inputs["ckpt"])]
    pytester.runpytest(*argv).assert_outcomes(passed=1)  # the suite alone
    pytester.runpytest(*argv, "test_plain.py").assert_outcomes(passed=2)  # suite and tests
