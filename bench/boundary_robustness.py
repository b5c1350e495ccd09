"""False-pass rate of every robustness gate for a model whose true value sits on its threshold.

Each scenario simulates `reps` eval sets of n samples drawn from a model whose worst view is
exactly on the gate's threshold (the other views better), builds real `qa.evidence.Evidence`
(one-hot logits that predict what was drawn), runs the registered check with its defaults
(gate on the one-sided bound at confidence 0.95, Wilson bounds; the mCE's bootstrap with
1,000 resamples, seed 0) and counts passes. A sound gate passes such a model with
probability at most 1 - 0.95 = 0.05; Wilson's is a little above it at some n by the
discreteness of the binomial (0.0513 exactly for p = 0.5 at n = 2,000).

    SCENARIOS: corruption_accuracy (min), corruption_accuracy (max_relative_drop),
    prediction_consistency, adversarial_accuracy, mean_corruption_error (mCE against a
    baseline) and mean_corruption_error (relative mCE against the candidate's clean error).

Each is `scenario(n, reps, seed) -> {"kind", "n", "reps", "wrong", "rate", "what"}`; `wrong`
counts the passes. Run as a script for a table:

    .venv/bin/python bench/boundary_robustness.py [--n 270 2000] [--reps 1000] [--seed 0]
"""

import argparse
import time

import numpy as np
from scipy.special import ndtr

from qa.checks import REGISTRY, load_all
from qa.evidence import CLEAN, Evidence, View

load_all()
CLASSES = 3
NOISE, BLUR = "gaussian_noise", "defocus_blur"


def _noise(s: int, model: str = "candidate") -> View:
    return View(model=model, perturbation=NOISE, severity=s)


def _evidence(labels: np.ndarray, predictions: dict[View, np.ndarray]) -> Evidence:
    """Evidence whose views predict the given classes, as one-hot logits."""
    arrays = {v: np.eye(CLASSES, dtype=np.float32)[p] * 5 for v, p in predictions.items()}
    ids = [str(i) for i in range(len(labels))]
    return Evidence([str(c) for c in range(CLASSES)], labels, ids, arrays)


def _predict(labels: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """The label where `correct`, another class elsewhere."""
    return np.where(correct, labels, (labels + 1) % CLASSES)


def _count(kind: str, n: int, reps: int, seed: int, params: dict, draw) -> dict:
    """Run the registered `kind` with `params` on `reps` evidence sets from `draw(rng, n)`."""
    spec = REGISTRY[kind]
    p = spec.params(**params)
    rng = np.random.default_rng(seed)
    passes = sum(spec.run(draw(rng, n), p).status == "pass" for _ in range(reps))
    shown = {k: v for k, v in params.items() if k not in ("perturbations", "severities")}
    what = ", ".join(f"{k}={v}" for k, v in shown.items()) + " on the boundary"
    return {
        "kind": kind,
        "n": n,
        "reps": reps,
        "wrong": passes,
        "rate": passes / reps,
        "what": what,
    }


def corruption_accuracy_min(n: int, reps: int, seed: int) -> dict:
    """Worst view's accuracy 0.90 = min; the other view 0.95, clean 0.97 (independent draws)."""

    def draw(rng, n):
        labels = rng.integers(0, CLASSES, n)
        acc = {CLEAN: 0.97, _noise(1): 0.95, _noise(2): 0.90}
        return _evidence(labels, {v: _predict(labels, rng.random(n) < a) for v, a in acc.items()})

    params = {"perturbations": [NOISE], "severities": [1, 2], "min": 0.9}
    return _count("corruption_accuracy", n, reps, seed, params, draw)


def corruption_accuracy_drop(n: int, reps: int, seed: int) -> dict:
    """Clean accuracy 0.95; s2 0.855, a relative drop of exactly 0.1 = max; s1 0.90.

    Paired as corruption is: a clean miss is rarely fixed (10%), so the corrupted hits sit
    mostly inside the clean ones.
    """

    def draw(rng, n):
        labels = rng.integers(0, CLASSES, n)
        clean = rng.random(n) < 0.95
        views = {CLEAN: clean}
        for s, acc in ((1, 0.90), (2, 0.855)):
            views[_noise(s)] = rng.random(n) < np.where(clean, (acc - 0.005) / 0.95, 0.1)
        return _evidence(labels, {v: _predict(labels, ok) for v, ok in views.items()})

    params = {"perturbations": [NOISE], "severities": [1, 2], "max_relative_drop": 0.1}
    return _count("corruption_accuracy", n, reps, seed, params, draw)


def prediction_consistency(n: int, reps: int, seed: int) -> dict:
    """Worst view flips 10% of the clean predictions = max; the other view 5%."""

    def draw(rng, n):
        labels = rng.integers(0, CLASSES, n)
        clean = rng.integers(0, CLASSES, n)
        views = {CLEAN: clean}
        for s, rate in ((1, 0.05), (2, 0.10)):
            other = (clean + rng.integers(1, CLASSES, n)) % CLASSES
            views[_noise(s)] = np.where(rng.random(n) < rate, other, clean)
        return _evidence(labels, views)

    params = {"perturbations": [NOISE], "severities": [1, 2], "max": 0.1}
    return _count("prediction_consistency", n, reps, seed, params, draw)


def adversarial_accuracy(n: int, reps: int, seed: int) -> dict:
    """Accuracy under PGD 0.5 = min, under FGSM 0.6, clean 0.97."""
    params = {"min": 0.5}
    clean, fgsm, pgd = REGISTRY["adversarial_accuracy"].params(**params).views()

    def draw(rng, n):
        labels = rng.integers(0, CLASSES, n)
        acc = {clean: 0.97, fgsm: 0.6, pgd: 0.5}
        return _evidence(labels, {v: _predict(labels, rng.random(n) < a) for v, a in acc.items()})

    return _count("adversarial_accuracy", n, reps, seed, params, draw)


def _latents(rng, n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """Two uniform difficulties per sample (candidate, baseline), Gaussian-copula correlated."""
    z = rng.standard_normal((2, n))
    return ndtr(z[0]), ndtr(rho * z[0] + np.sqrt(1 - rho**2) * z[1])


def _errs(labels: np.ndarray, u: np.ndarray, rates: dict[View, float]) -> dict:
    """Predictions wrong where the sample's difficulty u < the view's error rate (nested)."""
    return {v: _predict(labels, u >= e) for v, e in rates.items()}


def mean_corruption_error_baseline(n: int, reps: int, seed: int) -> dict:
    """mCE against a baseline exactly 1.0 = max: CE 1 for both corruptions, two severities each.

    Candidate errors (0.2, 0.3) and (0.1, 0.2), clean 0.05; the baseline's (0.25, 0.25) and
    (0.15, 0.15), clean 0.08. Within a model a harder sample fails more views; the two models'
    difficulties correlate (rho 0.5), as two fine-tunes of one task do.
    """
    cand = {CLEAN: 0.05, _noise(1): 0.2, _noise(2): 0.3}
    base = {View(model="baseline"): 0.08, _noise(1, "baseline"): 0.25}
    base[_noise(2, "baseline")] = 0.25
    for s, (c, b) in enumerate(((0.1, 0.15), (0.2, 0.15)), start=1):
        cand[View(perturbation=BLUR, severity=s)] = c
        base[View(model="baseline", perturbation=BLUR, severity=s)] = b

    def draw(rng, n):
        labels = rng.integers(0, CLASSES, n)
        u_cand, u_base = _latents(rng, n, 0.5)
        return _evidence(labels, _errs(labels, u_cand, cand) | _errs(labels, u_base, base))

    params = {"perturbations": [NOISE, BLUR], "severities": [1, 2], "max": 1.0}
    return _count("mean_corruption_error", n, reps, seed, params, draw)


def mean_corruption_error_clean(n: int, reps: int, seed: int) -> dict:
    """Relative mCE against the candidate's own clean error (0.1) exactly 1.0 = max.

    Errors (0.15, 0.25) and (0.12, 0.28): each adds on average 0.1, the clean error, so both
    relative CEs are 1. The clean error is the denominator: the bootstrap must resample it.
    """
    rates = {CLEAN: 0.1, _noise(1): 0.15, _noise(2): 0.25}
    rates |= {View(perturbation=BLUR, severity=1): 0.12, View(perturbation=BLUR, severity=2): 0.28}

    def draw(rng, n):
        labels = rng.integers(0, CLASSES, n)
        return _evidence(labels, _errs(labels, rng.random(n), rates))

    params = {
        "perturbations": [NOISE, BLUR],
        "severities": [1, 2],
        "reference": "clean",
        "metric": "relative_mce",
        "max": 1.0,
    }
    return _count("mean_corruption_error", n, reps, seed, params, draw)


SCENARIOS = [
    corruption_accuracy_min,
    corruption_accuracy_drop,
    prediction_consistency,
    adversarial_accuracy,
    mean_corruption_error_baseline,
    mean_corruption_error_clean,
]


def main() -> None:
    """Print each scenario's false-pass rate, its limit 0.05 + 2 SE, wall and CPU seconds."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[270, 2000])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="run the scenarios whose function name contains this")
    args = ap.parse_args()
    for scenario in SCENARIOS:
        if args.only and args.only not in scenario.__name__:
            continue
        for n in args.n:
            start, cpu = time.perf_counter(), time.process_time()
            out = scenario(n, args.reps, args.seed)
            se = np.sqrt(0.05 * 0.95 / out["reps"])
            verdict = "ok" if out["rate"] <= 0.05 + 2 * se else "TOO HIGH"
            print(
                f"{out['kind']:<62} n={n:<5} {out['wrong']:>4}/{out['reps']} = {out['rate']:.3f}"
                f" (<= {0.05 + 2 * se:.3f}: {verdict}) {time.perf_counter() - start:.0f}s,"
                f" {time.process_time() - cpu:.0f}s CPU",
                flush=True,
            )


if __name__ == "__main__":
    main()
