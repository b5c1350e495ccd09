"""`qa`'s command line: the parser of every subcommand and its argument types; qa.cli runs
the command `args.command` names. Torch-free, as `qa --help` must be."""

import argparse
import importlib

from qa import __version__
from qa.precision import PRECISIONS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="qa", description="Quality-assurance gates for fine-tuned image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"qa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="gate a checkpoint with a suite")
    run.add_argument("suite", help="suite YAML file")
    run.add_argument("checkpoint", help="checkpoint file (qa, state_dict, TorchScript, .pt2)")
    run.add_argument("--baseline", help="baseline checkpoint (overrides the suite's baseline:)")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="forward pass: fp32, bf16, or fp16 on cuda only (default: the suite's precision)",
    )
    run.add_argument("--batch-size", type=_positive, help="default: the suite's batch_size")
    run.add_argument("--workers", type=_non_negative, help="decoding workers (0 on cpu)")
    run.add_argument("--out", default="reports", help="report folder (default: reports)")
    run.add_argument("--no-cache", action="store_true", help="recompute every view")
    run.add_argument("--cache-dir", default=".qa-cache", help="default: .qa-cache")
    run.add_argument("--save-predictions", metavar="PATH", help="write ids, labels, logits (npz)")
    run.add_argument(
        "--rehash",
        action="store_true",
        help="hash every data file's content again instead of trusting the (path, size, mtime) index",
    )
    run.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a pickled module, TorchScript or torch.export archive (runs code from the file)",
    )
    _trust_plugins(run)
    run.add_argument("--strict", action="store_true", help="a warning fails the run")
    run.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    report = sub.add_parser("report", help="re-render a saved result.json (runs nothing)")
    report.add_argument("result", help="a result.json written by `qa run`")
    report.add_argument(
        "--format", choices=_Names("qa.report", "FORMATS"), default="terminal", **_FORMAT_HELP
    )
    report.add_argument("--out", metavar="FILE", help="write here atomically (default: stdout)")
    diff_parser = sub.add_parser(
        "diff", help="compare two saved results: verdict, values, new failures"
    )
    diff_parser.add_argument("old", help="the earlier result.json")
    diff_parser.add_argument("new", help="the later result.json")
    history_parser = sub.add_parser(
        "history", help="each check's value across saved results, by start"
    )
    history_parser.add_argument(
        "paths", nargs="+", metavar="DIR_OR_FILE", help="result.json or a folder"
    )
    for view in (diff_parser, history_parser):
        view.add_argument(
            "--format",
            choices=_Names("qa.report.compare", "RENDERERS"),
            default="terminal",
            **_FORMAT_HELP,
        )
        view.add_argument("--out", metavar="FILE", help="write here atomically (default: stdout)")
    validate = sub.add_parser("validate", help="check a suite's schema without running it")
    validate.add_argument("suite")
    _trust_plugins(validate)
    checks = sub.add_parser("checks", help="list every check kind and its parameters")
    checks.add_argument("kind", nargs="?", help="only this kind, with an example suite entry")
    checks.add_argument("--json", action="store_true", help="print JSON")
    perturbations = sub.add_parser(
        "perturbations", help="list every perturbation: group, ladders, ImageNet-C, mCE default"
    )
    perturbations.add_argument("--json", action="store_true", help="print JSON")
    schema = sub.add_parser("schema", help="print the JSON Schema of a suite or result.json")
    schema.add_argument("document", choices=("suite", "result"))
    describe = sub.add_parser("describe", help="show what a checkpoint says about itself")
    describe.add_argument("checkpoint")
    describe.add_argument("--json", action="store_true", help="print the facts as JSON")
    calibrate = sub.add_parser("calibrate", help="fit a temperature; write a calibrated copy")
    calibrate.add_argument("checkpoint", help="a qa checkpoint")
    calibrate.add_argument(
        "--data", required=True, help="held-out ImageFolder (e.g. the val split)"
    )
    calibrate.add_argument("--out", required=True, help="the calibrated checkpoint to write")
    calibrate.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    calibrate.add_argument("--batch-size", type=_positive, default=256)
    return parser


def _trust_plugins(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--trust-plugins",
        action="store_true",
        help="import the modules the suite's `plugins:` names (runs their code)",
    )


# argparse spells out a metavar when it adds the argument, but a help text only when it shows it
_FORMAT_HELP = {"metavar": "FORMAT", "help": "%(choices)s (default: %(default)s)"}


class _Names:
    """The names of a registry, `module.name`, imported when argparse first reads them (to
    check a `--format` or show a subcommand's help): building the parser, which `qa --help`
    does, imports no report renderer."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def _names(self) -> list[str]:
        return list(getattr(importlib.import_module(self.module), self.name))

    def __iter__(self):
        return iter(self._names())

    def __contains__(self, value) -> bool:
        return value in self._names()


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, found {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, found {text!r}")
    return value
