"""Wrong decisions at the boundary, for every gate kind that compares with a threshold or baseline.

`confidence: c` means one thing for every gate: a model whose true value sits exactly on the
threshold passes with probability at most 1 - c, and a regression gate fails a candidate that
is exactly as good as the baseline (or worse by exactly the tolerance) with probability at most
1 - c. Each scenario (bench/boundaries.py, bench/boundary_robustness.py) draws eval sets from a
population on that boundary and runs the registered check as a suite does; the rate of wrong
decisions must not exceed 1 - c by more than two standard errors of the simulation.

    .venv/bin/python bench/false_alarm.py [--reps 1000] [--sizes 270 2000] [--kinds ece mcnemar]

Prints one row per scenario and size (rate, standard error, the allowed rate, seconds), then
the worst rate as `worst_false_pass_rate: X` (wrong passes and wrong fails alike).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from boundaries import ACCURACY, DATA, REGRESSION, calibration_scenarios
from boundary_robustness import SCENARIOS as ROBUSTNESS

from qa.checks import load_all

CONFIDENCE = 0.95


def run(scenario, n: int, reps: int, seed: int) -> tuple[int, float]:
    """How many of `reps` eval sets of size n got the wrong decision, and the seconds taken."""
    spec = load_all()[scenario.kind]
    params = spec.params(**scenario.params)
    rng = np.random.default_rng(seed)
    start, wrong = time.perf_counter(), 0
    for _ in range(reps):
        ev = scenario.draw(rng, n)
        ev.confidence = CONFIDENCE
        wrong += spec.run(ev, params).status == scenario.wrong
    return wrong, time.perf_counter() - start


def main() -> None:
    """Run every scenario at every size; print the table and the worst rate last."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[270, 2000])
    ap.add_argument("--kinds", nargs="*", help="only these gate kinds")
    args = ap.parse_args()
    scenarios = ACCURACY + DATA + calibration_scenarios() + REGRESSION
    scenarios = [s for s in scenarios if not args.kinds or s.kind in args.kinds]
    alpha = 1 - CONFIDENCE
    print(f"confidence {CONFIDENCE}; {args.reps} eval sets per row; wrong = the decision a model")
    print("on the boundary must get at most 1 - c of the time (limit: 1 - c + 2 standard errors)")
    header = f"{'gate':24} {'boundary':44} {'n':>5} {'wrong':>6} {'rate':>6} {'se':>6} {'limit':>6}"
    print(header + "  decision   s")
    worst, failures = 0.0, []
    rows = [(s, n) for s in scenarios for n in args.sizes]
    rows += [(r, n) for r in ROBUSTNESS for n in args.sizes if not args.kinds]
    for i, (scenario, n) in enumerate(rows):
        if callable(scenario):  # a robustness scenario: its own simulation, same contract
            start = time.perf_counter()
            out = scenario(n, args.reps, seed=i)
            kind, what, wrong = out["kind"], out["what"], out["wrong"]
            decision, seconds = "pass", time.perf_counter() - start
        else:
            wrong, seconds = run(scenario, n, args.reps, seed=i)
            kind, what, decision = scenario.kind, scenario.what, scenario.wrong
        rate = wrong / args.reps
        se = np.sqrt(alpha * (1 - alpha) / args.reps)
        limit = alpha + 2 * se
        worst = max(worst, rate)
        flag = "" if rate <= limit else "  OVER"
        if flag:
            failures.append(f"{kind} ({what}) n={n}")
        print(
            f"{kind:24} {what[:44]:44} {n:>5} {wrong:>6} {rate:>6.3f} {se:>6.3f} {limit:>6.3f}"
            f"  false {decision:4} {seconds:>5.0f}{flag}",
            flush=True,
        )
    if failures:
        print("over the limit: " + "; ".join(failures))
    print(f"worst_false_pass_rate: {worst:.3f}")


if __name__ == "__main__":
    main()
