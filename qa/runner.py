"""Apply a suite's checks to evidence: plan the views, run every check in isolation, decide.

A check that stops early (qa.checks.Stop) gets the status and message it stopped with; a
check that raises anything else becomes that check's `error` (with the exception's message
and traceback in its details), never a crash of the run and never a silent pass, as in
deepchecks. The verdict maps to qa.errors.ExitCode:

    pass   every gate passed; `warn` outcomes allowed unless strict       -> exit 0
    fail   at least one gate failed                                      -> exit 1
    error  no gate failed, but some check could not be evaluated         -> exit 1

An `error` blocks like a failed gate, whatever the check's severity: a gate that could not
be evaluated has not been passed. It has its own verdict so that reports can say "could not
evaluate" rather than "failed"; `exit_code` maps both to ExitCode.GATE_FAILED. `skip` (a
check that says it does not apply, and why) does not block.

A check with `slice:` is run on that slice's samples; one with `slices: {column}` on every
value of the column, Holm-corrected, through qa.slicing. A slice that cannot be taken (an
unknown column, an empty slice) is that check's error.
"""

import time
import traceback
from dataclasses import replace

from qa.checks import STATUSES, CheckKind, CheckResult, load_kinds
from qa.errors import ExitCode
from qa.evidence import Evidence, View
from qa.result import CheckOutcome
from qa.slicing import SliceError, column_values, run_sliced
from qa.suite import CheckSpec, Suite


def plan(suite: Suite) -> list[View]:
    """The distinct views the suite's checks read, in first-asked order, that can be computed.

    Baseline views are kept only when the suite has a baseline (load_suite already refuses a
    check that needs one without it), and views of a split only when the suite declares it:
    a check whose optional view is absent handles that itself, any other reports an error.
    """
    splits = suite.data.splits()
    views = dict.fromkeys(v for check in suite.checks for v in check.views())
    return [
        v
        for v in views
        if v.split in splits and (v.model != "baseline" or suite.baseline is not None)
    ]


def run_checks(suite: Suite, evidence: Evidence) -> list[CheckOutcome]:
    """Run every check of the suite on the evidence, each isolated from the others' failures.

    The suite's defaults (confidence, interval method) are applied to the evidence first, so
    the suite is the one place they are set.
    """
    registry = load_kinds(c.kind for c in suite.checks)
    evidence = replace(
        evidence,
        confidence=suite.defaults.confidence,
        interval_method=suite.defaults.interval,
    )
    outcomes = []
    for check in suite.checks:
        start = time.perf_counter()
        result = _run_one(check, registry[check.kind], evidence)
        status = result.status
        if status == "fail" and check.severity == "warn":
            status = "warn"
        outcomes.append(
            CheckOutcome(
                name=check.name,
                kind=check.kind,
                family=registry[check.kind].family,
                severity=check.severity,
                status=status,
                result=result,
                slice=check.slice.as_dict() if check.slice else None,
                seconds=time.perf_counter() - start,
            )
        )
    return outcomes


def _run_one(check: CheckSpec, kind: CheckKind, evidence: Evidence) -> CheckResult:
    """One check's result; every way it can go wrong is an `error` result that says why."""
    try:
        if check.slice is not None:
            evidence = slice_evidence(evidence, check)
        if check.slices is None:
            result = kind.run(evidence, check.params)
        else:
            s = check.slices
            result = run_sliced(kind, check.params, evidence, s.column, s.min_size)
    except SliceError as exc:
        return CheckResult("error", str(exc))
    except KeyError as exc:
        missing = exc.args[0] if exc.args else None
        if isinstance(missing, View):
            return CheckResult("error", f"no evidence for {missing.label()} (was it planned?)")
        return _crashed(exc)
    except Exception as exc:
        return _crashed(exc)
    if not isinstance(result, CheckResult) or result.status not in STATUSES:
        return CheckResult(
            "error", f"check {check.kind} returned {result!r}, not a CheckResult with a status"
        )
    return result


def _crashed(exc: Exception) -> CheckResult:
    return CheckResult(
        "error",
        f"the check raised {type(exc).__name__}: {exc}",
        details={"traceback": traceback.format_exc()},
    )


def slice_evidence(evidence: Evidence, check: CheckSpec) -> Evidence:
    """The evidence restricted to the check's slice; SliceError when it cannot be taken."""
    column = check.slice.column
    mask = check.slice.mask(column_values(evidence, column))
    if not mask.any():
        values = sorted({str(v) for v in evidence.metadata[column]})
        shown = ", ".join(values[:20]) + (" ..." if len(values) > 20 else "")
        raise SliceError(f"slice {check.slice.as_dict()} holds no samples; {column} has {shown}")
    return evidence.subset(mask)


def verdict(outcomes: list[CheckOutcome], strict: bool = False) -> str:
    """ "fail" if a gate failed, else "error" if a check could not be evaluated, else "pass".

    With `strict`, a `warn` outcome (a failed severity:warn gate) counts as a failed gate.
    """
    statuses = {o.status for o in outcomes}
    if "fail" in statuses or (strict and "warn" in statuses):
        return "fail"
    if "error" in statuses:
        return "error"
    return "pass"


def exit_code(decision: str) -> ExitCode:
    """The process exit code of a verdict: 0 for pass, 1 for fail and for error."""
    return ExitCode.OK if decision == "pass" else ExitCode.GATE_FAILED
