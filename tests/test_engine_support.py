"""Helpers shared by the engine, cache, CLI, report and model-format tests (no tests here).

Real data (scikit-learn's digits at 16x16, written as an ImageFolder) and real small models
(torchvision resnet18 with random weights, saved in qa's checkpoint format).
"""

import atexit
import functools
import shutil
import tempfile
import textwrap
from pathlib import Path

import torch

from qa.architectures import build_model
from qa.checkpoint import save_checkpoint
from qa.preprocess import make_preprocessing

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
