"""Helpers shared by the tests (no tests here; a module not named test_*, so pytest collects none).

Real data (scikit-learn's digits at 16x16, written as an ImageFolder) and real small models
(torchvision resnet18 with random weights, saved in qa's checkpoint format).
"""

import atexit
import dataclasses
import functools
import io
import shutil
import tarfile
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch

from qa.application import RunOptions, evidence_request
from qa.architectures import build_model
from qa.checkpoint import save_checkpoint
from qa.checks import CheckResult
from qa.engine import build_evidence
from qa.evidence import Evidence
from qa.preprocess import make_preprocessing
from qa.report import json_report
from qa.result import CheckOutcome, RunReport

DIGITS = [str(d) for d in range(10)]
SIZE = 16
PREPROCESSING = make_preprocessing(SIZE)
# The suite's `model:` for files that do not describe themselves (state_dict, TorchScript, .pt2)
SPEC = f"""\
model:
  arch: resnet18
  arch_kwargs: {{num_classes: 10}}
  class_names: {DIGITS}
  preprocessing: {{resize: {SIZE}, crop: {SIZE}}}
"""


@functools.cache
def _digits_test_split() -> Path:
    """The real digits test split (270 images), written once per test session."""
    from trainer.digits import write_digits

    root = Path(tempfile.mkdtemp(prefix="qa-digits-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    write_digits(root, size=SIZE, seed=0)
    return root / "test"


def write_data(root: Path, per_class: int = 6) -> Path:
    """A small real eval set under `root`: the first `per_class` test digits of each class.

    Small on purpose: the machine running the tests has two shared cores.
    """
    for folder in sorted(_digits_test_split().iterdir()):
        (root / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:per_class]:
            shutil.copy(image, root / folder.name / image.name)
    return root


def tiny_module(seed: int = 0, num_classes: int = 10) -> torch.nn.Module:
    """A random-weight resnet18 in eval mode, the same for the same seed."""
    torch.manual_seed(seed)
    return build_model("resnet18", {"num_classes": num_classes}).eval()


def save_tiny(path: Path, seed: int = 0, class_names=DIGITS, module=None, **extra) -> Path:
    """Save a resnet18 (random weights unless `module` is given) as a qa checkpoint."""
    module = module if module is not None else tiny_module(seed, len(class_names))
    save_checkpoint(
        path,
        {
            "arch": "resnet18",
            "arch_kwargs": {"num_classes": len(class_names)},
            "class_names": list(class_names),
            "preprocessing": PREPROCESSING,
            "state_dict": module.state_dict(),
            "provenance": {"config": {"seed": seed}},
            **extra,
        },
    )
    return path


def write_suite(path: Path, eval_data, checks: str, head: str = "") -> Path:
    """A suite YAML: `head` (extra top-level keys) and `checks` (YAML list items)."""
    text = f"name: test\n{head}data:\n  eval: {eval_data}\nchecks:\n{textwrap.indent(textwrap.dedent(checks), '  ')}"
    path.write_text(text)
    return path


def evidence_of(suite, candidate, views, baseline=None, **changes) -> Evidence:
    """The engine's evidence for `views` as a run of `suite` requests it, but on the CPU with
    no cache, no progress bar and no perturbation hook, unless `changes` (EvidenceRequest
    fields: cache_dir, perturb, workers, ...) say otherwise."""
    models = {"candidate": candidate, "baseline": baseline}
    options = RunOptions(cache_dir=None, progress=False)
    request = evidence_request(suite, models, views, torch.device("cpu"), options)
    return build_evidence(dataclasses.replace(request, **{"perturb": None, **changes}))


def forward_counter(monkeypatch) -> list[int]:
    """Count resnet forward passes (batches) from here on: one list item per call."""
    from torchvision.models.resnet import ResNet

    calls: list[int] = []
    original = ResNet.forward

    def counted(self, x):
        calls.append(len(x))
        return original(self, x)

    monkeypatch.setattr(ResNet, "forward", counted)
    return calls


def outcome(name, status, result, family="accuracy", severity="fail", slice_=None):
    """One check's outcome, named after its kind."""
    return CheckOutcome(name, name.split("#")[0], family, severity, status, result, slice_, 0.25)


def sample_report() -> RunReport:
    """A finished run with one check of every status, numpy numbers and a slice."""
    top1 = CheckResult(
        "pass",
        "top-1 accuracy lower 95% bound 0.9412 meets >= 0.9 (260/270)",
        {
            "accuracy": np.float64(0.962963),
            "accuracy_low": 0.9412,
            "accuracy_high": 0.9780,
            "k": np.int64(260),
            "n": 270,
        },
        {"metric": "accuracy_low", "op": ">=", "value": 0.9},
    )
    recall = CheckResult(
        "fail",
        "recall of worst class 8 lower 95% bound 0.6200 misses >= 0.7",
        {"recall_low": 0.62},
        {"metric": "recall_low", "op": ">=", "value": 0.7},
        {"classes": [{"class": "8", "recall": np.float32(0.8)}]},
    )
    ece = CheckResult(
        "fail",
        "ECE 0.0800 misses <= 0.05",
        {"ece": 0.08},
        {"metric": "ece", "op": "<=", "value": 0.05},
    )
    nan = CheckResult("error", "macro-F1 is nan: cannot be compared", {"macro_f1": float("nan")})
    skip = CheckResult("skip", "no baseline given")
    return RunReport(
        suite_name="release",
        suite_path="suites/release.yaml",
        verdict="fail",
        exit_code=1,
        strict=False,
        started="2026-01-01T00:00:00.000+00:00",
        finished="2026-01-01T00:00:02.000+00:00",
        duration=2.0,
        checkpoint={
            "path": "candidate.pt",
            "sha256": "ab" * 32,
            "arch": "resnet18",
            "class_names": ["0", "1"],
            "provenance": {},
        },
        baseline=None,
        environment={"python": "3.11", "device": "cpu"},
        outcomes=[
            outcome("top1_accuracy", "pass", top1),
            outcome("per_class_recall", "fail", recall, slice_={"column": "cam", "equals": "A"}),
            outcome("ece", "warn", ece, family="calibration", severity="warn"),
            outcome("macro_f1", "error", nan),
            outcome("mcnemar", "skip", skip, family="regression"),
        ],
    )


def sample_doc() -> dict:
    """`sample_report` as the result document every renderer takes."""
    return json_report.to_dict(sample_report())


def add_member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    """Add a member `name` holding `payload` to an open tar."""
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_shards(folder: Path, out: Path, n: int = 2) -> str:
    """Tar the class folders of `folder` into `n` shards, each image with a `.cls` holding its
    folder's name; members in reverse order, so the dataset's order cannot come from the tar."""
    files = sorted((p for p in folder.rglob("*") if p.is_file()), reverse=True)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        with tarfile.open(out / f"val-{i:03d}.tar", "w") as tar:
            for f in files[i::n]:
                rel = f.relative_to(folder).as_posix()
                tar.add(f, rel)
                add_member(tar, rel.split(".")[0] + ".cls", f.parent.name.encode())
    return str(out / f"val-{{000..{n - 1:03d}}}.tar")
