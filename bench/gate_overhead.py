"""What `trainer finetune --gate` costs per epoch, as a share of the epoch's training time.

The demo's release suite (suites/release.yaml) without its robustness checks gates every epoch
of a fine-tune on the digits data (`trainer data digits`, written to a temporary folder unless
--data names one), against a baseline trained here for one epoch. The first gated epoch fills
the cache (the data's index and profiles, the baseline's views); each later one computes only
the new candidate's views and the checks, which is what a long run pays per epoch. Those warm
epochs are the measure: the gate's seconds (writing the candidate, `qa.run`, result.json,
from metrics.jsonl's `gate.seconds`) over the epoch's training seconds (`seconds`).

    .venv/bin/python bench/gate_overhead.py [--epochs 4] [--size 32] [--data DIR]

Each warm epoch's train and gate times are printed, then the median share and its spread;
the last line is the headline, `gate_overhead: <median gate seconds / train seconds>`.
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

from qa.checks import load_all
from trainer.cli import main as trainer
from trainer.digits import write_digits

RELEASE = Path(__file__).resolve().parent.parent / "suites" / "release.yaml"


def release_without_robustness(data: Path, baseline: Path, size: int, out: Path) -> Path:
    """suites/release.yaml less its robustness checks, on `data` and against `baseline`, its
    image_size gate at the written `size` (the demo's is 32)."""
    suite = yaml.safe_load(RELEASE.read_text())
    registry = load_all()
    suite["checks"] = [c for c in suite["checks"] if registry[c["kind"]].family != "robustness"]
    for check in suite["checks"]:
        if check["kind"] == "image_size":
            check.update(min_width=size, min_height=size)
    suite["data"] = {
        "eval": str(data / "test"),
        "train": str(data / "train"),
        "calibration": str(data / "val"),
    }
    suite["baseline"] = str(baseline)
    out.write_text(yaml.safe_dump(suite, sort_keys=False))
    return out


def finetune(*args: str) -> None:
    """Run `trainer finetune`; a gate that fails (exit 1) still measured what it costs."""
    code = trainer(["finetune", "--workers", "0", *args])
    if code not in (0, 1):
        sys.exit(f"trainer finetune exited {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="gated epochs (the first is cold)")
    parser.add_argument("--size", type=int, default=32, help="image side of the written digits")
    parser.add_argument("--data", type=Path, default=None, help="a `trainer data digits` folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-overhead-") as tmp:
        tmp = Path(tmp)
        data = args.data
        if data is None:
            data = tmp / "digits"
            write_digits(data, size=args.size, seed=0)
        finetune("--data", str(data), "--epochs", "1", "--out", str(tmp / "baseline"))
        baseline = tmp / "baseline" / "best.pt"
        suite = release_without_robustness(data, baseline, args.size, tmp / "suite.yaml")
        run = tmp / "run"
        finetune(
            *("--data", str(data), "--epochs", str(args.epochs), "--augment", "crop"),
            *("--out", str(run), "--gate", str(suite), "--gate-cache", str(tmp / "cache")),
        )
        lines = (run / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
    shares = []
    for r in records:
        warm = r["epoch"] > 1
        share = r["gate"]["seconds"] / r["seconds"]
        print(
            f"epoch {r['epoch']}{'' if warm else ' (cold)'}: train {r['seconds']:.2f}s  "
            f"gate {r['gate']['seconds']:.2f}s  share {share:.3f}  {r['gate']['verdict']}"
        )
        if warm:
            shares.append(share)
    if not shares:
        sys.exit("no warm epoch: give --epochs 2 or more")
    print(
        f"warm epochs: {len(shares)}, median share {statistics.median(shares):.3f} "
        f"(min {min(shares):.3f}, max {max(shares):.3f})"
    )
    print(f"gate_overhead: {statistics.median(shares):.3f}")


if __name__ == "__main__":
    main()
