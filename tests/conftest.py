"""Shared fixtures: tiny, real image data made by the tests themselves."""

import shutil
from pathlib import Path

import pytest
from helpers import save_tiny, write_data

from trainer.digits import write_digits


@pytest.fixture(autouse=True)
def _not_in_github_actions(monkeypatch):
    """Tests see no CI runner: no annotations on stdout, nothing appended to the job's summary
    (tests that want them set the variables themselves)."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def _keep_first(folder: Path, per_class: int) -> None:
    for class_dir in folder.iterdir():
        for extra in sorted(class_dir.iterdir())[per_class:]:
            extra.unlink()


@pytest.fixture(scope="session")
def tiny_digits_source(tmp_path_factory) -> Path:
    """Real digits 0-2 at 16x16: 8 training and 4 validation images per class (read-only)."""
    root = tmp_path_factory.mktemp("digits") / "tiny"
    write_digits(root, size=16, seed=0, classes=[0, 1, 2])
    shutil.rmtree(root / "test")
    _keep_first(root / "train", 8)
    _keep_first(root / "val", 4)
    return root


@pytest.fixture
def tiny_digits(tiny_digits_source, tmp_path) -> Path:
    """A private copy of the tiny digits tree, free to damage."""
    return Path(shutil.copytree(tiny_digits_source, tmp_path / "data"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two real test digits per class (20 images), shared by a module's tests; modules that
    need another size define their own `data`."""
    return write_data(tmp_path_factory.mktemp("digits"), per_class=2)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny random-weight resnet18 over the ten digit classes, in qa's checkpoint format."""
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "cand.pt", seed=4)
