"""Shared fixtures: tiny, real image data made by the tests themselves."""

import shutil
from pathlib import Path

import pytest

from trainer.digits import write_digits


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
