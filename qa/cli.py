"""`qa`: argument parsing and exit codes, nothing else.

    qa run SUITE CHECKPOINT [options]   gate a checkpoint: exit 0 pass, 1 gate failed; writes
                                        result.json, junit.xml, result.html, summary.md under
                                        --out, all or none (a run stopped by exit 2 or 3 writes
                                        them describing the error), appends summary.md to
                                        $GITHUB_STEP_SUMMARY and, when $GITHUB_ACTIONS is
                                        "true", prints GitHub annotations (qa.report.annotations)
    qa report RESULT.json --format F    re-render a saved result as html, md, junit or terminal
                                        (stdout, or --out FILE written atomically); runs nothing
    qa diff OLD.json NEW.json           what changed between two saved runs: verdict, each
                                        check's status and value, new failures, fixes
    qa history DIR_OR_FILE...           each check's value across saved runs, oldest first
                                        (both: --format terminal|md|html, --out FILE)
    qa validate SUITE                   check a suite's schema and that its data and baseline
                                        exist ("ok: N checks"), or print every problem
                                        (it and `qa run` import the suite's `plugins:` only
                                        with --trust-plugins: they run code, qa.plugins)
    qa checks [KIND] [--json]           every check kind (or one, with an example suite entry),
                                        its family and parameters
    qa perturbations [--json]           every perturbation: its group, severity ladders, whether
                                        it is an ImageNet-C corruption and in the mCE default
    qa schema suite|result              print the JSON Schema (draft 2020-12) of a suite file
                                        or of result.json, for editors and other tools
    qa describe CHECKPOINT [--json]     what a checkpoint says about itself
    qa calibrate CHECKPOINT --data DIR --out FILE
                                        fit a temperature on DIR; write a checkpoint carrying it
    qa --version                        "qa 0.1.0"

Under torchrun (`torchrun --nproc-per-node K -m qa run ...`) every rank runs `qa run` on its
shard of the data (qa.distributed): rank 0 prints and writes the reports, the other ranks
print only errors of their own, prefixed "rank K: ", and every rank exits with rank 0's code.

Exit codes (qa.errors.ExitCode): 0 every gate passed, 1 a gate failed or could not be evaluated,
2 unusable input (one line `error: ...` on stderr), 3 internal error (a bug: one line asking
for a report; the traceback only with QA_DEBUG=1). Output paths are checked before any work
(2); reports that cannot be written once the gates are decided are one line on stderr, and
the exit code stays the verdict's. The commands that need torch (run, describe, calibrate)
import their modules when they run, so that `--help`, `validate`, `checks`, `perturbations`,
`schema`, `report`, `diff` and `history` never import torch, great-expectations or scipy.
"""

import gc
import json
import os
import sys
import time
import traceback

from qa.cli_args import build_parser
from qa.errors import (
    ExitCode,
    InputError,
    PeerError,
    QAError,
    RankError,
    RankInputError,
    first_line,
)
from qa.io import check_writable, write_text_atomic

# Each command imports what it needs (the reports, the suite schema, rich) when it runs, so
# that `qa --help` imports none of them: it must answer at once.

BUG_REPORT = "internal error (a bug in qa; please report it with this line, QA_DEBUG=1 shows more)"


def entry() -> None:
    """The `qa` console command: `main`, then exit without the interpreter's last garbage
    collection (every report is written and flushed by then; that collection over everything
    imported costs a warm run a tenth of its time, and a cold one, with torch, over a second)."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run one `qa` command and return its exit code (qa.errors.ExitCode)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2), already printed by argparse
        return int(exc.code or 0)
    try:
        return int(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `qa checks | head`: the reader has what it wanted
        _silence_stdout()
        return int(ExitCode.OK)
    except Exception as exc:
        return _fail(exc)[0]


def _silence_stdout() -> None:
    """Point stdout at /dev/null once its reader is gone, so that Python's flush at exit does
    not fail a second time (the recipe of Python's `signal` documentation)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _fail(exc: Exception, rank: int = 0) -> tuple[int, str]:
    """Print the one-line error for `exc`; return its exit code and that line (sans `error: `).

    InputError is bad input (2); anything else, a QAError without an input meaning too, is a
    bug (3): one line asking for a report, the traceback only with QA_DEBUG=1. A sharded run
    (qa.distributed) adds two kinds: a peer lost (PeerError, 3, not a bug here) and an error
    every rank raised together (RankInputError, RankError), printed by rank 0 alone; other
    ranks prefix their own errors with "rank K: ".
    """
    if isinstance(exc, InputError):
        code, line = ExitCode.BAD_INPUT, first_line(exc)
    elif isinstance(exc, PeerError):
        code, line = exc.exit_code, first_line(exc)
    else:
        if os.environ.get("QA_DEBUG") == "1":
            traceback.print_exception(exc)
        shown = "" if isinstance(exc, RankError) else f"{type(exc).__name__}: "
        line = f"{BUG_REPORT}: {shown}{first_line(exc)}"
        code = exc.exit_code if isinstance(exc, QAError) else ExitCode.INTERNAL
    if rank == 0:
        print(f"error: {line}", file=sys.stderr)
    elif not isinstance(exc, RankInputError | RankError):
        print(f"error: rank {rank}: {line}", file=sys.stderr)
    return int(code), line


def _calibrate(args) -> int:
    from qa.calibrate import calibrate_checkpoint  # torch: imported only by this command

    fit = calibrate_checkpoint(args.checkpoint, args.data, args.out, args.device, args.batch_size)
    before, after = fit["before"], fit["after"]
    print(
        f"{args.out}: T={fit['temperature']:.3f} fitted on {fit['n']} images of {args.data}; "
        f"ECE {before['ece']:.4f} -> {after['ece']:.4f}, NLL {before['nll']:.4f} -> {after['nll']:.4f}"
    )
    return int(ExitCode.OK)


def _run(args) -> int:
    from qa.distributed import from_environment  # numpy, and torch under torchrun: this command

    with from_environment(args.device) as group:
        return _agree(group, _run_rank(args, group))


def _run_rank(args, group) -> int:
    """One rank's `qa run`; its exit code. Rank 0 (the only rank in one process) prints,
    writes the reports and returns the verdict's code; the other ranks compute their shards
    and print only errors of their own, prefixed "rank K: "."""
    from qa.report import json_report
    from qa.result import now

    lead = group.rank == 0
    try:  # else no report could say what went wrong
        group.together(lambda: lead and check_writable(args.out, "--out", folder=True))
    except Exception as exc:
        return _fail(exc, group.rank)[0]
    started, clock = now(), time.perf_counter()
    try:
        report = _gate(args, group)
    except Exception as exc:  # exit 2 or 3: the reports describe the error, not an earlier run
        code, line = _fail(exc, group.rank)
        if lead:
            doc = json_report.error_document(
                args.suite,
                args.checkpoint,
                code,
                line,
                started=started,
                duration=time.perf_counter() - clock,
                strict=args.strict,
                device=args.device,
            )
            _publish(doc, args.out)
        return code
    if not lead:
        return ExitCode.OK  # rank 0's code is every rank's (_agree)
    doc = json_report.to_dict(report)
    _publish(doc, args.out)  # first: a reader that stops reading must not cost the reports
    try:
        _show(doc, args.quiet)
    except BrokenPipeError:  # `qa run ... | head`: the verdict's exit code still stands
        _silence_stdout()
    except SystemExit:  # rich's own answer to a broken pipe (it exits 1): the verdict stands
        pass
    return report.exit_code


def _agree(group, code: int) -> int:
    """Rank 0's exit code, on every rank. A rank that can no longer reach rank 0 keeps its
    own failing code, or fails with exit 3 (saying so) where it would have passed."""
    try:
        return int(group.broadcast(code))
    except PeerError as exc:  # a peer died or hung after this rank finished its part
        if code in (ExitCode.OK, ExitCode.GATE_FAILED):
            return _fail(exc, group.rank)[0]
        return code


def _gate(args, group):
    """The finished RunReport of `qa run` on rank 0, None on the other ranks (the reports are
    written by the caller)."""
    from qa.application import RunOptions, run_suite  # torch when a view is computed: here only

    options = RunOptions(
        baseline=args.baseline,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        out=None,
        cache_dir=None if args.no_cache else args.cache_dir,
        save_predictions_to=args.save_predictions,
        trust=args.trust_checkpoint,
        trust_plugins=args.trust_plugins,
        strict=args.strict,
        progress=not args.quiet and group.rank == 0,
        precision=args.precision,
        rehash=args.rehash,
    )
    return run_suite(args.suite, args.checkpoint, options, group)


def _show(doc: dict, quiet: bool) -> None:
    from rich.console import Console

    from qa.report import terminal

    console = Console()
    if quiet:
        console.print(terminal.verdict_line(doc))
    else:
        terminal.show(doc, console)


def _publish(doc: dict, out: str) -> None:
    """Write the report set under `out`, append the summary to $GITHUB_STEP_SUMMARY and, in
    GitHub Actions, print a workflow annotation per failed or warned check.

    Neither failure changes the exit code: the verdict (or the error) already decided it.
    """
    from qa.report import ReportWriteError, annotations, append_step_summary, write_report_set

    try:
        write_report_set(doc, out)
    except ReportWriteError as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            append_step_summary(doc, step_summary)
        except OSError as exc:  # the gate's decision stands; only the job page misses it
            print(f"warning: $GITHUB_STEP_SUMMARY {step_summary}: {exc}", file=sys.stderr)
    if os.environ.get("GITHUB_ACTIONS") == "true":  # annotations at the checks' suite lines
        sys.stdout.write(annotations.for_github(doc))


def _report(args) -> int:
    from qa.report import FORMATS, json_report, terminal

    if args.out is not None:
        check_writable(args.out, "--out")
    doc = json_report.load(args.result)
    return _emit(
        args,
        lambda console: _render_or_refuse(args.result, terminal.show, doc, console),
        lambda: _render_or_refuse(args.result, FORMATS[args.format].module.render, doc),
    )


def _render_or_refuse(path: str, render, doc: dict, *extra):
    """`render(doc, *extra)`; a document `load` accepted that still cannot be rendered (a
    hand-made `details` the figures cannot draw, say) is the file's fault: InputError."""
    from jinja2 import TemplateError

    try:
        return render(doc, *extra)
    except (LookupError, TypeError, ValueError, AttributeError, TemplateError) as exc:
        raise InputError(
            f"{path}: cannot be rendered as a qa result ({type(exc).__name__}: {first_line(exc)})"
        ) from None


def _diff(args) -> int:
    from qa.report import compare

    return _view(args, compare, lambda: compare.load(args.old, args.new))


def _history(args) -> int:
    from qa.report import history

    return _view(args, history, lambda: history.load(args.paths))


def _view(args, module, read) -> int:
    """`qa diff` and `qa history`: read, then show on the terminal or write `--format` text.
    Exit 0 whatever the runs say (a viewer), 2 on an unreadable result file."""
    if args.out is not None:
        check_writable(args.out, "--out")
    data = read()
    return _emit(
        args, lambda console: module.show(data, console), lambda: module.render(data, args.format)
    )


def _emit(args, show, render) -> int:
    """Show on the terminal (its width and colours) for `--format terminal` without `--out`;
    else write `render()`'s text to stdout or, atomically, to `--out`."""
    if args.format == "terminal" and args.out is None:
        from rich.console import Console

        show(Console())
        return ExitCode.OK
    text = render()
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(args.out, text)
    return ExitCode.OK


def _validate(args) -> int:
    from qa.suite import load_suite
    from qa.suite_errors import SuiteError

    try:
        suite = load_suite(args.suite, check_paths=True, trust_plugins=args.trust_plugins)
    except SuiteError as exc:  # every problem, in line order
        print("\n".join(f"error: {line}" for line in exc.lines), file=sys.stderr)
        return ExitCode.BAD_INPUT
    print(f"ok: {len(suite.checks)} checks")
    return ExitCode.OK


def _checks(args) -> int:
    from rich.console import Console

    from qa import cli_info

    rows = cli_info.check_rows(args.kind)
    if args.json:
        print(cli_info.as_json(rows, one=args.kind is not None))
        return ExitCode.OK
    console = Console()
    for block in cli_info.renderables(rows, examples=args.kind is not None):
        console.print(block, highlight=False)
    return ExitCode.OK


def _perturbations(args) -> int:
    from rich.console import Console

    from qa import cli_perturbations

    rows = cli_perturbations.perturbation_rows()
    if args.json:
        print(cli_perturbations.as_json(rows))
    else:
        Console().print(cli_perturbations.table(rows))
    return ExitCode.OK


def _schema(args) -> int:
    from qa.schema import SCHEMAS

    print(json.dumps(SCHEMAS[args.document](), indent=2))
    return ExitCode.OK


def _describe(args) -> int:
    from qa.checkpoint import describe, description_json, description_lines  # torch: here only
    from qa.onnx_model import describe_onnx, is_onnx_file

    info = (describe_onnx if is_onnx_file(args.checkpoint) else describe)(args.checkpoint)
    print(description_json(info) if args.json else "\n".join(description_lines(info)))
    return ExitCode.OK


COMMANDS = {
    "run": _run,
    "report": _report,
    "diff": _diff,
    "history": _history,
    "validate": _validate,
    "checks": _checks,
    "perturbations": _perturbations,
    "schema": _schema,
    "describe": _describe,
    "calibrate": _calibrate,
}
