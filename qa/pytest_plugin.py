"""A pytest plugin: a qa suite's checks as pytest test items, for projects that gate in pytest.

    pytest --qa-suite suites/release.yaml --qa-checkpoint checkpoints/candidate.pt \
        [--qa-baseline B] [--qa-device cpu|cuda] [--qa-out DIR]

Registered through the `pytest11` entry point. Without --qa-suite it does nothing. With it,
the suite runs once, while pytest collects it (one `run_suite`: one inference pass per view),
and each check becomes a test item named after the check:

    pass   passed
    fail   failed; the failure text is the check's message and deciding comparison, no traceback
    error  failed ("could not be evaluated: ..."): a gate that was not evaluated was not passed
    warn   passed with a QACheckWarning (`-W error::qa.pytest_plugin.QACheckWarning` = --strict)
    skip   skipped, with the check's message as the reason

When no test path is given on the command line, only the suite is collected; with paths, its
checks join the tests found there. An unusable input (qa's exit 2: bad suite, missing
checkpoint, class mismatch) is a one-line collection error. --qa-out also writes the reports.
"""

import warnings
from pathlib import Path

import pytest

from qa.errors import ExitCode, QAError, first_line
from qa.report import json_report
from qa.report.fmt import decision


class QACheckWarning(UserWarning):
    """A check that failed a gate of severity `warn`: reported, not blocking."""


class CheckFailed(Exception):
    """A check that failed or could not be evaluated; pytest shows its message only."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The --qa-* options."""
    group = parser.getgroup("qa", "qa: gate a checkpoint with a suite, one test per check")
    group.addoption("--qa-suite", metavar="SUITE", help="suite YAML whose checks become tests")
    group.addoption("--qa-checkpoint", metavar="CHECKPOINT", help="checkpoint to gate")
    group.addoption("--qa-baseline", metavar="CHECKPOINT", help="overrides the suite's baseline")
    group.addoption("--qa-device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    group.addoption("--qa-out", metavar="DIR", help="also write qa's reports here")


def pytest_configure(config: pytest.Config) -> None:
    """With --qa-suite, make sure pytest collects the suite file (alone, if no path was given)."""
    suite = _suite_path(config)
    if suite is None:
        return
    if config.getoption("qa_checkpoint") is None:
        raise pytest.UsageError("--qa-suite needs --qa-checkpoint CHECKPOINT")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(suite)]
    elif all(Path(config.invocation_params.dir, a).resolve() != suite for a in config.args):
        config.args.append(str(suite))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The suite named by --qa-suite is collected as a QASuite; any other file is not ours."""
    suite = _suite_path(parent.config)
    if suite is not None and file_path.resolve() == suite:
        return QASuite.from_parent(parent, path=file_path)
    return None


def _suite_path(config: pytest.Config) -> Path | None:
    suite = config.getoption("qa_suite", None)
    return None if suite is None else Path(config.invocation_params.dir, suite).resolve()


class QASuite(pytest.File):
    """A qa suite file: running it once yields one QACheck per check."""

    def collect(self):
        """Run the suite (once) and yield its checks as items, in suite order."""
        # imported here, not above: every pytest run loads this plugin, few run a suite (torch)
        from qa.application import RunOptions, run_suite

        option = self.config.getoption
        options = RunOptions(
            baseline=option("qa_baseline"),
            device=option("qa_device"),
            out=option("qa_out"),
            progress=False,
        )
        try:
            report = run_suite(self.path, option("qa_checkpoint"), options)
        except QAError as exc:
            if exc.exit_code != ExitCode.BAD_INPUT:
                raise
            raise self.CollectError(f"qa: {first_line(exc)}") from None
        for check in json_report.to_dict(report)["checks"]:
            item = QACheck.from_parent(self, name=check["name"], check=check)
            if check["status"] == "skip":  # a marker, so that pytest reports the item's location
                item.add_marker(pytest.mark.skip(reason=f"{item.name}: {check['message']}"))
            yield item


class QACheck(pytest.Item):
    """One check of a finished run; running it only reports the status the run decided."""

    def __init__(self, *, check: dict, **kwargs):
        super().__init__(**kwargs)
        self.check = check

    def runtest(self) -> None:
        """Pass, fail or warn as the check's status says (a skip never gets here)."""
        status, message = self.check["status"], self.check["message"]
        if status == "warn":  # attributed to the suite file, not to this plugin's source
            warnings.warn_explicit(
                QACheckWarning(f"{self.name}: {message}"), QACheckWarning, str(self.path), 0
            )
        elif status == "error":
            raise CheckFailed(f"could not be evaluated: {message}")
        elif status == "fail":
            raise CheckFailed(f"{message}\ndecision: {decision(self.check)}")

    def repr_failure(self, excinfo, style=None):
        """The check's own words for a CheckFailed; pytest's usual report for anything else."""
        if isinstance(excinfo.value, CheckFailed | QACheckWarning):  # the latter under -W error
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        """Where the check comes from: the suite file, and the check's kind."""
        return self.path, 0, f"qa {self.check['kind']}: {self.name}"
