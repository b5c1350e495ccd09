"""What `make demo` expects: the good candidate passes and the flawed one fails a named gate.

    python examples/demo_expect.py reports/good reports/flawed --fails "3 read as 8"

Reads each run's result.json (not the terminal table), prints both verdicts and the checks
that failed, and exits 0 exactly when the good run passed (exit code 0) and the flawed run
failed its gates (exit code 1) with every check named by --fails among the failures; 1
otherwise, saying which expectation did not hold. A run that wrote no report, or stopped on
bad input or a bug (verdict "error"), never meets an expectation.
"""

import argparse
import json
import sys
from pathlib import Path

from qa.report.fmt import effect_lines


def load_result(folder: str) -> dict | None:
    """The result.json a `qa run --out FOLDER` wrote, or None when there is none to read."""
    path = Path(folder) / "result.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def failing(result: dict) -> list[dict]:
    """The checks whose gate failed (warnings excluded: they do not block)."""
    return [check for check in result.get("checks", []) if check.get("status") == "fail"]


def verdict_lines(label: str, folder: str, result: dict | None) -> list[str]:
    """A run's verdict, its counts, and per failing check qa's message, then, as every qa
    report words them, a regression gate's effect and a borderline decision's note."""
    if result is None:
        return [f"{label}: no report in {folder} (qa did not finish)"]
    summary = result.get("summary", {})
    counts = ", ".join(f"{n} {status}" for status, n in summary.items() if n)
    checkpoint = result.get("checkpoint", {})
    name = checkpoint.get("path", "?") if isinstance(checkpoint, dict) else checkpoint
    lines = [
        f"{label}: {name}: {str(result.get('verdict')).upper()} "
        f"(exit {result.get('exit_code')}; {counts})"
    ]
    if result.get("error"):
        lines.append(f"  error: {result['error']}")
    for check in failing(result):
        lines.append(f"  failed: {check.get('name')}: {check.get('message', '')}")
        lines += [f"          {line}" for line in effect_lines(check)[1:]]  # effect, borderline
    return lines


def unmet(good: dict | None, flawed: dict | None, expected: list[str]) -> list[str]:
    """Every expectation that does not hold; empty when the demo told its story."""
    problems = []
    if good is None or good.get("verdict") != "pass" or good.get("exit_code") != 0:
        problems.append("the good candidate was expected to pass (verdict pass, exit 0)")
    if flawed is None or flawed.get("verdict") != "fail" or flawed.get("exit_code") != 1:
        problems.append("the flawed candidate was expected to fail its gates (exit 1)")
        return problems
    names = {check.get("name") for check in flawed.get("checks", [])}
    failed = {check.get("name") for check in failing(flawed)}
    for name in expected:
        if name not in names:
            problems.append(f"the suite has no check named {name!r}")
        elif name not in failed:
            problems.append(f"the flawed candidate was expected to fail {name!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Print both verdicts; exit 0 when the expectations hold, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("good", help="report folder of the run expected to pass")
    parser.add_argument("flawed", help="report folder of the run expected to fail")
    parser.add_argument(
        "--fails", action="append", default=[], metavar="NAME", help="a check the flawed run fails"
    )
    args = parser.parse_args(argv)
    good, flawed = load_result(args.good), load_result(args.flawed)
    print("\n".join(verdict_lines("good  ", args.good, good)))
    print("\n".join(verdict_lines("flawed", args.flawed, flawed)))
    problems = unmet(good, flawed, args.fails)
    for problem in problems:
        print(f"demo: unexpected: {problem}", file=sys.stderr)
    if not problems:
        expected = ", ".join(repr(name) for name in args.fails) or "its gates"
        print(f"demo: as expected, qa passes the good candidate and fails the flawed on {expected}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
