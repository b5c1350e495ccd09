"""False-alarm rate and power of the accuracy-regression gate, by simulation.

Pairs of prediction sets are drawn at the demo's eval size (270 images, digits test split) from
a joint distribution of (baseline correct, candidate correct):
  - same quality: both 96% accurate, disagreeing on 4% of samples (2% each way);
  - a real 3-point drop: baseline 96%, candidate 93% (4% baseline-only, 1% candidate-only).
Each pair goes through the registered `accuracy_regression` check exactly as a suite runs it
(tolerance 0, gated on the paired bootstrap bound). The false-alarm rate must not exceed
1 - confidence.

    .venv/bin/python bench/regression_false_alarm.py [--pairs 1000] [--n 270]
"""

import argparse

import numpy as np

import qa.checks.regression  # noqa: F401  (registers the family)
from qa.checks import REGISTRY
from qa.evidence import BASELINE, CLEAN, Evidence


def simulate(joint: dict, n: int, pairs: int, confidence: float, seed: int) -> float:
    """Fraction of simulated pairs that the gate fails."""
    spec = REGISTRY["accuracy_regression"]
    params = spec.params(tolerance=0.0, resamples=1000)
    outcomes = list(joint)  # (baseline correct, candidate correct)
    probs = [joint[o] for o in outcomes]
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=np.int64)
    failed = 0
    for i in range(pairs):
        draw = rng.choice(len(outcomes), size=n, p=probs)
        base_ok = np.array([outcomes[d][0] for d in draw])
        cand_ok = np.array([outcomes[d][1] for d in draw])
        ev = Evidence(
            class_names=["0", "1"],
            labels=labels,
            sample_ids=[str(j) for j in range(n)],
            arrays={
                CLEAN: np.eye(2)[1 - cand_ok.astype(int)],
                BASELINE: np.eye(2)[1 - base_ok.astype(int)],
            },
            confidence=confidence,
        )
        failed += spec.run(ev, params.model_copy(update={"seed": i})).status == "fail"
    return failed / pairs


def main() -> None:
    """Print the false-alarm rate, the power against a 3-point drop, then the headline."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--n", type=int, default=270)
    ap.add_argument("--confidence", type=float, default=0.95)
    args = ap.parse_args()
    same = {(1, 1): 0.94, (1, 0): 0.02, (0, 1): 0.02, (0, 0): 0.02}
    drop = {(1, 1): 0.92, (1, 0): 0.04, (0, 1): 0.01, (0, 0): 0.03}
    fa = simulate(same, args.n, args.pairs, args.confidence, seed=1)
    power = simulate(drop, args.n, args.pairs, args.confidence, seed=2)
    print(f"eval size {args.n}, {args.pairs} simulated pairs, confidence {args.confidence}")
    print(f"false-alarm rate (equal quality): {fa:.3f}  (must be <= {1 - args.confidence:.3f})")
    print(f"power against a real 3-point drop: {power:.3f}")
    print(f"false_alarm_rate: {fa:.3f}")


if __name__ == "__main__":
    main()
