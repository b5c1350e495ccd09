"""`trainer`: argument parsing and exit codes only; the work lives in the other modules.

Exit codes: 0 done; 1 no epoch passed `finetune --gate SUITE`, one `error:` line naming the
checks that never passed (trainer.gate); 2 bad input, one `error:` line (a flag, the data, an
unusable --out, or a run that diverged: its loss or weights went NaN or infinite, usually from
too high a --lr); 3 a bug in trainer; 130 interrupted.
"""

import argparse
import os
import sys
import traceback
from dataclasses import MISSING, fields

from qa import __version__
from qa.errors import ExitCode, InputError, QAError, first_line
from trainer.config import TrainConfig, flag_type

BUG_REPORT = (
    "internal error (a bug in trainer; please report it with this line, QA_DEBUG=1 shows more)"
)


class _Parser(argparse.ArgumentParser):
    # argparse would print usage and exit; we want one line and our exit code.
    def error(self, message: str):
        raise InputError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The `trainer` command line: data, describe, export, finetune."""
    parser = _Parser(prog="trainer", description="Fine-tune torchvision classifiers for qa.")
    parser.add_argument("--version", action="version", version=f"trainer (qa {__version__})")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = commands.add_parser("data", help="write demo data")
    data.add_argument("source", choices=["digits"], help="which data set")
    data.add_argument("--out", required=True, help="folder to write train/ val/ test/ into")
    data.add_argument("--size", type=int, default=32, help="image side in pixels")
    data.add_argument("--seed", type=int, default=0, help="seed of the split")
    data.add_argument("--classes", default=None, help="digits to keep, e.g. 0-4 or 0,1,7")
    data.add_argument(
        "--mislabel",
        default=None,
        metavar="A:B",
        help="file training images of digit A under B (val and test stay clean)",
    )
    data.add_argument(
        "--mislabel-fraction",
        type=float,
        default=None,
        help="share of digit A's training images --mislabel files under B, in [0, 1]",
    )

    describe = commands.add_parser("describe", help="print a checkpoint's metadata")
    describe.add_argument("checkpoint", help="a qa checkpoint (.pt)")
    describe.add_argument("--json", action="store_true", help="print JSON instead of a table")

    export = commands.add_parser(
        "export", help="write a checkpoint as a self-describing model file"
    )
    export.add_argument("--onnx", required=True, metavar="CHECKPOINT", help="a qa checkpoint (.pt)")
    export.add_argument("--out", required=True, help="the ONNX file to write")

    finetune = commands.add_parser(
        "finetune",
        help="fine-tune a model on an ImageFolder",
        description="Fine-tune a model on an ImageFolder. Exit 2 on bad input, including a run "
        "that diverges (NaN or infinite loss): it stops before saving that epoch. Exit 1 "
        "when --gate is given and no gated epoch passed the suite.",
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        # SUPPRESS: only flags actually given reach the config, so --resume can tell them apart.
        kwargs = {"default": argparse.SUPPRESS, "help": f.metadata["help"]}
        if f.default is not MISSING and f.default is not None:
            kwargs["help"] += f" (default: {f.default})"
        if flag_type(f) is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs.update(type=flag_type(f), choices=f.metadata.get("choices"))
        finetune.add_argument(flag, **kwargs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `trainer` console script; returns the exit code (module docstring)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    try:
        return _dispatch(args)
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt as exc:
        print(" ".join(("interrupted", str(exc))).strip(), file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        if os.environ.get("QA_DEBUG") == "1":
            traceback.print_exc()
        print(f"error: {BUG_REPORT}: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
        return int(ExitCode.INTERNAL)


def _dispatch(args: argparse.Namespace) -> int:
    # each command imports what it needs: `trainer data` and `--help` never import torch
    if args.command == "data":
        from trainer.digits import parse_classes, parse_mislabel, write_digits

        pair, fraction = parse_mislabel(args.mislabel), args.mislabel_fraction
        if (pair is None) != (fraction is None):
            raise InputError("data: give --mislabel and --mislabel-fraction together")
        classes = parse_classes(args.classes)
        counts = write_digits(args.out, args.size, args.seed, classes, pair, fraction or 0.0)
        print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    elif args.command == "describe":
        from qa.checkpoint import describe, description_json, description_lines

        info = describe(args.checkpoint)
        print(description_json(info) if args.json else "\n".join(description_lines(info)))
    elif args.command == "export":
        from trainer.export import export_onnx

        done = export_onnx(args.onnx, args.out)
        print(
            f"wrote {done['path']} (ONNX opset {done['opset']}, sha256 {done['sha256'][:12]}, "
            f"from {args.onnx} sha256 {done['source_sha256'][:12]})"
        )
    else:
        from trainer.finetune import finetune

        flags = {k: v for k, v in vars(args).items() if k != "command"}
        finetune(flags)
    return int(ExitCode.OK)
