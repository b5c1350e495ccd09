"""No checkpoint runs code without --trust-checkpoint, and every refusal is one line of our own.

The payloads are real: each test that shows a refusal also shows, with trust, that loading the
same file does run its code (a marker directory appears), so a refusal cannot pass by accident.
"""

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile

import pytest
import torch
from helpers import SIZE, SPEC, save_tiny, tiny_module, write_data, write_suite

from qa.cli import main
from qa.errors import UntrustedCheckpointError
from qa.formats import load_any
from qa.suite import load_suite
from qa.torchfile import reason

NAMES = ["model.pt2", "model.pt", "model.bin", "model"]


class _MakesMarker:
    """Unpickles to a zero Parameter of `shape`, creating the directory `marker` on the way."""

    def __init__(self, marker: str, shape: list[int]):
        self.marker, self.shape = marker, shape

    def __reduce__(self):
        expr = (
            f"(__import__('os').mkdir({self.marker!r}), "
            f"__import__('torch').nn.Parameter(__import__('torch').zeros({self.shape!r})))[1]"
        )
        return (eval, (expr,))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("digits"), per_class=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> bytes:
    """A genuine torch.export archive of a tiny classifier, as torch.export.save writes it."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIZE * SIZE, 10)).eval()
    program = torch.export.export(model, (torch.zeros(1, 3, SIZE, SIZE),))
    path = tmp_path_factory.mktemp("export") / "model.pt2"
    torch.export.save(program, path)
    return path.read_bytes()


def _rewrite(archive: bytes, change) -> bytes:
    """The archive with its members passed through `change` ({name: bytes} -> {name: bytes})."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zin:
        members = change({i.filename: zin.read(i.filename) for i in zin.infolist()})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for name, content in members.items():
            zout.writestr(name, content)
    return out.getvalue()


def _pickled_weight(archive: bytes, marker) -> bytes:
    """Flip one weight to `use_pickle` and make its payload a pickle that creates `marker`."""

    def change(members):
        config_name = next(n for n in members if n.endswith("weights/model_weights_config.json"))
        config = json.loads(members[config_name])
        meta = next(iter(config["config"].values()))
        meta["use_pickle"] = True
        shape = [s["as_int"] for s in meta["tensor_meta"]["sizes"]]
        payload = io.BytesIO()
        torch.save(_MakesMarker(str(marker), shape), payload)
        weights_dir = config_name.rsplit("/", 1)[0]
        members[f"{weights_dir}/{meta['path_name']}"] = payload.getvalue()
        members[config_name] = json.dumps(config).encode()
        return members

    return _rewrite(archive, change)


def _imports_module(archive: bytes, module: str) -> bytes:
    """No pickled member at all: the graph's input spec names an enum in `module` to import."""

    def change(members):
        name = next(n for n in members if n.endswith("models/model.json"))
        doc = json.loads(members[name])
        signature = doc["graph_module"]["module_call_graph"][0]["signature"]
        protocol, spec = json.loads(signature["in_spec"])
        kwargs_spec = spec["children_spec"][1]  # (args, kwargs): kwargs is a dict
        assert kwargs_spec["type"] == "builtins.dict"
        enum = {"__enum__": True, "fqn": f"{module}:Colour", "name": "RED"}
        kwargs_spec["context"] = json.dumps([enum])
        signature["in_spec"] = json.dumps([protocol, spec])
        members[name] = json.dumps(doc).encode()
        return members

    return _rewrite(archive, change)


def _run(tmp_path, data, checkpoint, *extra, head=SPEC) -> int:
    suite = write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n", head)
    args = [str(suite), str(checkpoint), "--no-cache", "--quiet", "--out", str(tmp_path / "r")]
    return main(["run", *args, *extra])


def _one_line_naming(err: str, path) -> None:
    assert err.count("\n") == 1, err
    assert str(path) in err and "--trust-checkpoint" in err and "weights_only" not in err


@pytest.mark.parametrize("name", NAMES)
def test_an_export_archive_with_a_pickled_weight_is_refused_under_any_name(
    tmp_path, data, exported, capsys, name
):
    marker = tmp_path / "code-ran"
    path = tmp_path / name
    path.write_bytes(_pickled_weight(exported, marker))
    spec = load_suite(
        write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n", SPEC)
    ).model
    with pytest.raises(UntrustedCheckpointError, match="--trust-checkpoint"):
        load_any(path, spec)
    assert _run(tmp_path, data, path) == 2
    _one_line_naming(capsys.readouterr().err, path)
    candidate = save_tiny(tmp_path / "candidate.pt", seed=1)
    assert _run(tmp_path, data, candidate, "--baseline", str(path)) == 2
    err = capsys.readouterr().err
    _one_line_naming(err, path)
    assert err.startswith(f"error: baseline {path}: ")
    assert not marker.exists()


def test_the_crafted_export_payload_is_real(tmp_path, data, exported):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.bin"
    path.write_bytes(_pickled_weight(exported, marker))
    spec = load_suite(
        write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n", SPEC)
    ).model
    model = load_any(path, spec, trust=True)
    assert marker.is_dir() and model.provenance == {"format": "torch.export"}


def test_an_export_archive_without_any_pickle_still_runs_code(tmp_path, exported, monkeypatch):
    """Why every torch.export archive needs trust: loading imports modules its graph names."""
    module = f"qa_planted_{os.getpid()}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(
        f"import enum, os\nos.mkdir({str(marker)!r})\nclass Colour(enum.Enum):\n    RED = 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "clean-looking.pt2"
    path.write_bytes(_imports_module(exported, module))
    with pytest.raises(UntrustedCheckpointError, match=r"torch\.export archive"):
        load_any(path)
    assert not marker.exists() and module not in sys.modules
    with pytest.raises(Exception, match="does not name its classes"):
        load_any(path, trust=True)
    assert marker.is_dir()
    sys.modules.pop(module)


class _WritesFiles(torch.nn.Module):
    """A TorchScript model whose __setstate__, run by torch.jit.load, writes a file anywhere."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.weight = torch.nn.Parameter(torch.zeros(10, 3 * SIZE * SIZE))

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return (self.weight, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.marker = state[1]
        self.training = state[2]
        torch.save([1], self.marker)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.t()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_torchscript_archive_is_refused_unless_trusted(tmp_path, data, capsys):
    marker = tmp_path / "written-on-load"
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(_WritesFiles(str(marker))), path)
    assert _run(tmp_path, data, path) == 2
    _one_line_naming(capsys.readouterr().err, path)
    assert not marker.exists()
    spec = load_suite(tmp_path / "s.yaml").model
    assert load_any(path, spec, trust=True).provenance == {"format": "torchscript"}
    assert marker.exists()


def _legacy_tar(path) -> None:
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("storages")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"0"))


def _plain_pickle(path) -> None:
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))


WRITERS = {
    "legacy-module-p2": lambda p: torch.save(
        tiny_module(), p, _use_new_zipfile_serialization=False
    ),
    "legacy-module-p4": lambda p: torch.save(
        tiny_module(), p, _use_new_zipfile_serialization=False, pickle_protocol=4
    ),
    "legacy-state-dict-p4": lambda p: torch.save(
        tiny_module().state_dict(), p, _use_new_zipfile_serialization=False, pickle_protocol=4
    ),
    "zip-module": lambda p: torch.save(tiny_module(), p),
}
UNREADABLE = {"plain-pickle": _plain_pickle, "legacy-tar": _legacy_tar}


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*WRITERS, *UNREADABLE])
def test_a_refused_pickle_is_exactly_one_line_on_stderr(tmp_path, data, kind):
    """As the user sees it: `python -m qa run` in its own process, stderr whole."""
    path = tmp_path / f"{kind}.pt"
    {**WRITERS, **UNREADABLE}[kind](path)
    suite = write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n", SPEC)
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    done = subprocess.run(
        [sys.executable, "-m", "qa", "run", str(suite), str(path), "--no-cache", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: {path}: "), done.stderr
    assert "weights_only" not in done.stderr
    if kind in WRITERS:
        assert "refusing to load" in done.stderr and "--trust-checkpoint" in done.stderr
    else:
        assert "not a readable torch checkpoint" in done.stderr


@pytest.mark.parametrize("kind", ["legacy-module-p4", "legacy-state-dict-p4"])
def test_a_legacy_file_is_refused_as_untrusted_and_quietly(tmp_path, kind, recwarn):
    path = tmp_path / "old.pt"
    WRITERS[kind](path)
    with pytest.raises(UntrustedCheckpointError, match="legacy"):
        load_any(path)
    assert not recwarn.list


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_torchs_advice_is_never_passed_on():
    saved = io.BytesIO()
    torch.save(
        {"w": torch.zeros(2)}, saved, _use_new_zipfile_serialization=False, pickle_protocol=4
    )
    with pytest.raises(pickle.UnpicklingError) as caught:
        torch.load(io.BytesIO(saved.getvalue()), weights_only=True)
    assert "weights_only" in str(caught.value)  # what torch says
    assert reason(caught.value) == "Unsupported operand 149"  # what qa passes on


def test_a_trusted_pickled_module_still_loads(tmp_path, data):
    path = tmp_path / "whole.pt"
    torch.save(tiny_module(seed=5), path, _use_new_zipfile_serialization=False)
    spec = load_suite(
        write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n", SPEC)
    ).model
    model = load_any(path, spec, trust=True)
    assert model.provenance == {"format": "pickled module"}
