"""The command line as people use it: every suite problem at once, paths relative to the suite,
--version, JSON from describe and checks, one kind with its example, qa's own trust advice."""

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from helpers import save_tiny, write_data, write_suite

from qa.checks import REGISTRY
from qa.cli import main
from qa.suite import load_suite
from trainer.cli import main as trainer_main

FOUR_TYPOS = """\
name: r
data:
  eval: d
defaults: {confidense: 0.9}
checks:
  - kind: top1_acuracy
    min: 0.9
  - kind: ece
    mx: 0.1
  - kind: macro_f1
    min: high
"""


def _suite(folder, text: str, name: str = "suite.yaml"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_validate_reports_every_problem_in_line_order(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    suite = _suite(tmp_path, FOUR_TYPOS)
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 3)[1:3] for line in err] == [
        [f"{suite}:4", "defaults.confidense"],
        [f"{suite}:6", "checks[0].kind"],
        [f"{suite}:9", "checks[1].mx"],  # said once: not also "checks[1].max: missing"
        [f"{suite}:11", "checks[2].min"],
    ]
    assert err[2].endswith(
        "unknown parameter 'mx' for ece; did you mean max? (valid: "
        "max, bins, binning, gate_on, resamples, seed)"
    )
    assert err[3] == f"error: {suite}:11: checks[2].min: expected a number, found 'high'"


def test_a_duplicate_key_and_a_non_finite_number_are_listed_with_the_rest(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    suite = _suite(
        tmp_path,
        """\
        name: r
        data: {eval: d}
        checks:
          - kind: top1_accuracy
            min: .inf
          - kind: ece
            max: 0.1
            max: 2
          - kind: nll
            mx: 1
        """,
    )
    assert main(["validate", str(suite)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {suite}:5: checks[0].min: expected a finite number, found .inf",
        f"error: {suite}:8: checks[1].max: duplicate key (YAML would keep only the last)",
        f"error: {suite}:10: checks[2].mx: unknown parameter 'mx' for nll; did you mean max? "
        "(valid: max, bins, binning, gate_on, resamples, seed)",
    ]


def test_run_names_the_first_problem_and_how_many_more(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    suite = _suite(tmp_path, FOUR_TYPOS)
    argv = ["run", str(suite), str(tmp_path / "m.pt"), "--quiet", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {suite}:4: defaults.confidense: unknown key 'confidense'")
    assert err.endswith(f" (and 3 more: qa validate {suite})\n")


def test_validate_reports_data_and_baseline_paths_with_nothing_there(tmp_path, capsys):
    (tmp_path / "suites" / "images").mkdir(parents=True)
    (tmp_path / "suites" / "val-0.tar").write_bytes(b"")
    suite = _suite(
        tmp_path / "suites",
        """\
        name: r
        data:
          eval: ../data/test
          train: {manifest: train.csv, root: images}
          calibration: {shards: "val-{0..2}.tar"}
        baseline: deployed.pt
        checks:
          - kind: top1_accuracy
            min: 0.5
        """,
    )
    assert main(["validate", str(suite)]) == 2
    folder = tmp_path / "suites"
    assert capsys.readouterr().err.splitlines() == [
        f"error: {suite}:3: data.eval: expected a folder of class folders, "
        f"found nothing at {folder / '../data/test'}",
        f"error: {suite}:4: data.train.manifest: expected a manifest file (CSV), "
        f"found nothing at {folder / 'train.csv'}",
        f"error: {suite}:5: data.calibration.shards: expected 3 tar shard(s), "
        f"found nothing at {folder / 'val-1.tar'} and 1 more",
        f"error: {suite}:6: baseline: expected a checkpoint file, found nothing at "
        f"{folder / 'deployed.pt'}",
    ]
    (tmp_path / "data" / "test").mkdir(parents=True)
    (folder / "train.csv").write_text("path,label\n")
    for name in ("val-1.tar", "val-2.tar", "deployed.pt"):
        (folder / name).write_bytes(b"")
    assert main(["validate", str(suite)]) == 0
    assert capsys.readouterr().out == "ok: 1 checks\n"


def test_suite_paths_resolve_against_the_suite_folder_and_absolute_ones_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "abs"
    _suite(
        tmp_path / "suites",
        f"""\
        name: r
        data:
          eval: ../data/test
          train: {{manifest: lists/train.csv, root: images}}
          calibration: {elsewhere}
        baseline: deployed.pt
        checks:
          - kind: top1_accuracy
            min: 0.5
        """,
    )
    suite = load_suite("suites/suite.yaml")
    assert suite.data.eval.path == os.path.join("suites", "..", "data", "test")
    assert suite.data.train.manifest == os.path.join("suites", "lists", "train.csv")
    assert suite.data.train.root == os.path.join("suites", "images")
    assert suite.data.calibration.path == str(elsewhere)
    assert suite.baseline == os.path.join("suites", "deployed.pt")
    # --baseline is a command-line path: from the current folder, as given
    assert load_suite("suites/suite.yaml", baseline="cli.pt").baseline == "cli.pt"


def test_a_run_from_another_folder_reads_the_data_beside_its_suite(tmp_path, monkeypatch):
    write_data(tmp_path / "project" / "data", per_class=1)
    ckpt = save_tiny(tmp_path / "project" / "m.pt")
    suite = write_suite(
        tmp_path / "project" / "suite.yaml", "data", "- {kind: top1_accuracy, min: 0}\n"
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["run", str(suite), str(ckpt), "--quiet", "--no-cache"]) == 0
    doc = json.loads((tmp_path / "elsewhere" / "reports" / "result.json").read_text())
    assert doc["suite"]["path"] == str(suite)


def test_version_of_both_commands_and_qa_version_imports_no_torch():
    code = (
        "import sys\nfrom qa.cli import main\ncode = main(['--version'])\n"
        "assert 'torch' not in sys.modules\nsys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "qa 0.1.0\n"), done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "--version"], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (0, "trainer (qa 0.1.0)\n"), done.stderr


def test_describe_json_parses_and_no_digest_is_cut_at_80_columns(tmp_path, capsys):
    path = save_tiny(tmp_path / "m.pt", seed=2)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["describe", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sha256"] == digest and info["arch"] == "resnet18"
    assert info["provenance"] == {"config": {"seed": 2}}
    assert trainer_main(["describe", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == info
    env = {**os.environ, "COLUMNS": "80", "LINES": "24"}
    done = subprocess.run(
        [sys.executable, "-m", "qa", "describe", str(path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert f"sha256             {digest}\n" in done.stdout  # whole, on one line


def test_checks_json_lists_every_registered_kind_with_its_parameters(capsys):
    assert main(["checks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(row["kind"] for row in rows) == sorted(REGISTRY)
    ece = next(row for row in rows if row["kind"] == "ece")
    assert ece["family"] == "calibration" and ece["needs_baseline"] is False
    assert ece["example"] == REGISTRY["ece"].params.example
    top = {p["name"]: p for p in ece["parameters"]}["max"]
    assert {k: top[k] for k in ("type", "required", "default")} == {
        "type": "float",
        "required": True,
        "default": None,
    }
    assert top["description"]
    assert main(["checks", "mcnemar", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["kind"] == "mcnemar" and one["needs_baseline"] is True


def test_checks_kind_shows_an_example_entry_that_a_suite_accepts(tmp_path, capsys):
    assert main(["checks", "corruption_accuracy"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("corruption_accuracy  robustness\n") and "top1_accuracy" not in out
    snippet = textwrap.dedent(out.split("  example:\n", 1)[1])
    entry = yaml.safe_load(snippet)["checks"][0]
    assert entry == {
        "kind": "corruption_accuracy",
        **REGISTRY["corruption_accuracy"].params.example,
    }
    (tmp_path / "d").mkdir()
    suite = _suite(tmp_path, "name: r\ndata: {eval: d}\n" + snippet)
    assert main(["validate", str(suite)]) == 0


def test_a_misspelt_kind_is_exit_2_with_the_kind_it_meant(capsys):
    assert main(["checks", "top1_acuracy"]) == 2
    assert capsys.readouterr().err == (
        "error: qa checks: unknown check kind 'top1_acuracy'; did you mean top1_accuracy?\n"
    )
    assert main(["checks", "zzz", "--json"]) == 2
    assert "known kinds: accuracy_regression, " in capsys.readouterr().err


class Custom:
    """Any class of the user's own: the safe unpickler may not build it."""

    def __init__(self):
        self.weight = torch.zeros(2)


@pytest.fixture
def custom_pickle(tmp_path):
    path = tmp_path / "custom.pt"
    buffer = io.BytesIO()
    torch.save({"model": Custom()}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(pickle.UnpicklingError, match="weights_only") as caught:
        torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert "Custom" in str(caught.value)  # torch refuses it, advising weights_only=False
    return path


def test_a_file_that_needs_code_gets_qas_advice_never_torchs(tmp_path, custom_pickle, capsys):
    data = write_data(tmp_path / "data", per_class=1)
    suite = write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0}\n")
    run = ["run", str(suite), str(custom_pickle), "--quiet", "--no-cache"]
    assert main([*run, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights_only" not in err
    assert err.startswith(f"error: {custom_pickle}: refusing to load: this file needs code to load")
    assert "Custom" in err and err.endswith(
        "; pass --trust-checkpoint only if you trust its source\n"
    )
    assert main(["describe", str(custom_pickle)]) == 2
    err = capsys.readouterr().err
    assert "this file needs code to load" in err and "weights_only" not in err
    assert trainer_main(["describe", str(custom_pickle)]) == 2
    err = capsys.readouterr().err
    assert "this file needs code to load" in err and "weights_only" not in err
