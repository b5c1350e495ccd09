"""The checkpoint format round-trips exactly and never executes code from a file."""

import os

import pytest
import torch

from qa.errors import InputError, UntrustedCheckpointError
from qa.models import (
    build_model,
    load_torch_file,
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from qa.preprocess import make_preprocessing


class _RunsCode:
    """Unpickling this calls os.mkdir(marker): the side effect a malicious file would have."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _checkpoint(module: torch.nn.Module) -> dict:
    return {
        "arch": "resnet18",
        "arch_kwargs": {"num_classes": 3},
        "class_names": ["a", "b", "c"],
        "preprocessing": make_preprocessing(16),
        "state_dict": module.state_dict(),
        "provenance": {"note": "test"},
    }


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    module = build_model("resnet18", {"num_classes": 3})
    module.train()
    module(torch.randn(8, 3, 16, 16))  # move BatchNorm statistics off their defaults
    module.eval()
    save_checkpoint(tmp_path / "m.pt", _checkpoint(module))

    ckpt = read_checkpoint(tmp_path / "m.pt")
    rebuilt = model_from_checkpoint(ckpt, tmp_path / "m.pt")
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(module(x), rebuilt(x))
    assert ckpt["class_names"] == ["a", "b", "c"]
    assert ckpt["format_version"] == 1
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic writer left nothing behind


@pytest.mark.parametrize("reader", [read_checkpoint, load_torch_file])
def test_a_pickle_that_runs_code_is_refused_and_not_run(tmp_path, reader):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "qa-checkpoint", "payload": _RunsCode(str(marker))}, path)

    with pytest.raises(UntrustedCheckpointError, match="refusing to load"):
        reader(path)
    assert not marker.exists()


def test_a_foreign_torch_file_is_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="expected a qa checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip archive")
    with pytest.raises(InputError, match="not a readable torch checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")
