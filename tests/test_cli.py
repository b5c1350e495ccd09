"""`qa` end to end through `qa.cli.main`: every exit code, one-line errors, lazy imports."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import DIGITS, sample_doc, save_tiny, write_data, write_suite

from qa.cli import main
from qa.report import json_report

ROOT = Path(__file__).resolve().parents[1]
PASSING = "- {kind: top1_accuracy, min: 0.0}\n"
FAILING = "- {kind: top1_accuracy, min: 0.99}\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("digits"), per_class=3)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "cand.pt", seed=4)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, ckpt):
    """The layout `make demo` leaves: the shipped suites, data/digits and the baseline."""
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(ROOT / "suites", root / "suites")
    for split in ("test", "train", "val"):
        write_data(root / "data" / "digits" / split, per_class=3)
    (root / "checkpoints").mkdir()
    shutil.copy(ckpt, root / "checkpoints" / "baseline.pt")
    return root


def _run(tmp_path, suite, ckpt, *extra):
    out = tmp_path / "reports"
    return main(["run", str(suite), str(ckpt), "--out", str(out), "--no-cache", "--quiet", *extra])


def test_exit_0_when_every_gate_passes_and_reports_are_written(tmp_path, data, ckpt, capsys):
    suite = write_suite(tmp_path / "s.yaml", data, PASSING)
    assert _run(tmp_path, suite, ckpt) == 0
    assert capsys.readouterr().out.startswith("PASS")
    reports = sorted(p.name for p in (tmp_path / "reports").iterdir())
    assert reports == ["junit.xml", "result.html", "result.json", "summary.md"]


def test_a_reader_that_stops_reading_costs_neither_the_verdict_nor_the_reports(
    tmp_path, data, ckpt
):
    suite = write_suite(tmp_path / "s.yaml", data, PASSING * 30)  # a long table, every gate met
    out = tmp_path / "reports"
    run = [sys.executable, "-m", "qa", "run", str(suite), str(ckpt), "--out", str(out)]
    done = subprocess.Popen([*run, "--no-cache"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done.stdout.read(1)  # `| head -c 1`: one byte, then the reader goes away
    done.stdout.close()
    _, err = done.communicate()
    assert done.returncode == 0, err  # the verdict's code, not rich's 1 for a broken pipe
    assert b"Traceback" not in err
    assert json.loads((out / "result.json").read_text())["exit_code"] == 0


def test_exit_1_when_a_gate_fails_and_the_table_says_which(tmp_path, data, ckpt, capsys):
    suite = write_suite(tmp_path / "s.yaml", data, PASSING + FAILING)
    code = main(["run", str(suite), str(ckpt), "--out", str(tmp_path / "r"), "--no-cache"])
    assert code == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and ">= 0.99" in out and out.rstrip().splitlines()[-1].startswith("FAIL")


def test_a_failing_run_appends_its_summary_to_github_step_summary(
    tmp_path, data, ckpt, capsys, monkeypatch
):
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    suite = write_suite(tmp_path / "s.yaml", data, PASSING + FAILING + PASSING)
    assert _run(tmp_path, suite, ckpt) == 1
    text = summary.read_text()
    assert text.startswith("earlier step\n### ✗ qa: test — **FAIL**")
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]  # under the header
    assert len(rows) == 3 and "fail" in rows[0] and ">= 0.99" in rows[0]
    assert (
        text.split("earlier step\n")[1] == (tmp_path / "reports" / "summary.md").read_text() + "\n"
    )
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert _run(tmp_path, suite, ckpt) == 1
    assert summary.read_text() == text  # appended only when the variable is set
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a folder: cannot be appended to
    assert _run(tmp_path, suite, ckpt) == 1  # the gate's decision, with a warning
    assert capsys.readouterr().err.startswith(f"warning: $GITHUB_STEP_SUMMARY {tmp_path}: ")


def test_a_warning_passes_unless_strict(tmp_path, data, ckpt):
    suite = write_suite(
        tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0.99, severity: warn}\n"
    )
    assert _run(tmp_path, suite, ckpt) == 0
    assert _run(tmp_path, suite, ckpt, "--strict") == 1


BAD_SUITES = {
    "bad yaml": "name: t\ndata: {eval: d\nchecks: []\n",
    "unknown key": "name: t\ndata: {eval: d}\nchecks:\n  - {kind: top1_accuracy, min: 0.5}\ncolour: red\n",
    "wrong type": "name: t\ndata: {eval: d}\nchecks:\n  - {kind: top1_accuracy, min: high}\n",
    "unknown kind": "name: t\ndata: {eval: d}\nchecks:\n  - {kind: top1_acuracy, min: 0.5}\n",
}


@pytest.mark.parametrize("case", BAD_SUITES)
def test_a_malformed_suite_is_exit_2_with_one_line(tmp_path, ckpt, capsys, case):
    (tmp_path / "d").mkdir()  # validate also checks that the data is there
    suite = tmp_path / "bad.yaml"
    suite.write_text(BAD_SUITES[case])
    run = ["run", str(suite), str(ckpt), "--quiet", "--out", str(tmp_path / "reports")]
    for argv in (["validate", str(suite)], run):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {suite}:") and err.count("\n") == 1, err


def test_unusable_inputs_are_exit_2(tmp_path, data, ckpt, capsys):
    suite = write_suite(tmp_path / "s.yaml", data, PASSING)
    assert _run(tmp_path, suite, tmp_path / "missing.pt") == 2
    assert "missing.pt: checkpoint not found" in capsys.readouterr().err
    narrow = save_tiny(tmp_path / "narrow.pt", class_names=DIGITS[:9])
    assert _run(tmp_path, suite, narrow) == 2
    err = capsys.readouterr().err
    assert "data classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in err and "model classes: [0, 1" in err
    assert err.count("\n") == 1
    missing = write_suite(tmp_path / "m.yaml", tmp_path / "nowhere", PASSING)
    assert _run(tmp_path, missing, ckpt) == 2
    assert "nowhere: data folder not found" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_exit_2(tmp_path, data, ckpt, capsys):
    suite = write_suite(tmp_path / "s.yaml", data, PASSING)
    assert _run(tmp_path, suite, ckpt, "--device", "cuda") == 2
    assert "--device cuda: CUDA is not available" in capsys.readouterr().err


def test_an_internal_error_is_exit_3_with_one_line_and_a_traceback_only_when_debugging(
    tmp_path, data, ckpt, capsys, monkeypatch
):
    import qa.application

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero in the engine")

    monkeypatch.setattr(qa.application, "build_evidence", broken)
    suite = write_suite(tmp_path / "s.yaml", data, PASSING)
    assert _run(tmp_path, suite, ckpt) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "please report it" in err
    assert "ZeroDivisionError: division by zero in the engine" in err
    monkeypatch.setenv("QA_DEBUG", "1")
    assert _run(tmp_path, suite, ckpt) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    result = json.loads((tmp_path / "reports" / "result.json").read_text())
    assert result["verdict"] == "error" and result["exit_code"] == 3  # the error, not a verdict
    assert result["error"]["kind"] == "internal" and "ZeroDivisionError" in err
    assert f"error: {result['error']['message']}\n" in err


def test_validate_checks_and_describe(demo, ckpt, capsys):
    release = demo / "suites" / "release.yaml"
    assert main(["validate", str(release)]) == 0
    assert (
        capsys.readouterr().out
        == f"ok: {len(yaml.safe_load(release.read_text())['checks'])} checks\n"
    )
    assert main(["checks"]) == 0
    out = capsys.readouterr().out
    assert "top1_accuracy" in out and "confusion_rate" in out and "required" in out
    assert main(["describe", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "sha256" in out
    assert main(["--help"]) == 0
    assert main(["run"]) == 2  # argparse's usage error


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["validate", "suites/release.yaml"],
        ["checks"],
        ["checks", "ece", "--json"],
        ["perturbations"],
        ["perturbations", "--json"],
        ["schema", "suite"],
        ["schema", "result"],
        ["diff", "{result}", "{result}"],
        ["history", "{result}", "--format", "html", "--out", "{out}"],
    ],
)
def test_help_validate_and_checks_never_import_torch(demo, argv, tmp_path):
    result = tmp_path / "result.json"
    result.write_text(json_report.render(sample_doc()))
    argv = [a.format(result=result, out=tmp_path / "history.html") for a in argv]
    code = (
        "import sys\nfrom qa.cli import main\n"
        f"code = main({argv!r})\n"
        "heavy = {'torch', 'great_expectations', 'scipy'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not heavy, f'{heavy} imported'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=demo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_import_qa_offers_the_api_without_importing_torch():
    code = (
        "import sys\nimport qa\n"
        "assert callable(qa.run) and isinstance(qa.Result, type), 'no qa.run or qa.Result'\n"
        "assert all(hasattr(qa, name) for name in qa.__all__), qa.__all__\n"
        "heavy = {'torch', 'torchvision', 'great_expectations', 'scipy'}\n"
        "heavy &= {m.split('.')[0] for m in sys.modules}\n"
        "assert not heavy, f'{heavy} imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["smoke", "release"])
def test_the_shipped_suites_run_on_digits_data_from_any_folder(
    demo, tmp_path, monkeypatch, ckpt, name
):
    """The suites read data/digits and the release suite checkpoints/baseline.pt, as `make demo`
    leaves them, relative to the suite's folder, not the current one; an untrained model fails
    their gates (exit 1, not 2)."""
    monkeypatch.chdir(tmp_path)  # neither the demo's folder nor suites/
    suite = demo / "suites" / f"{name}.yaml"
    assert main(["run", str(suite), str(ckpt), "--quiet", "--no-cache"]) == 1
    doc = json.loads((tmp_path / "reports" / "result.json").read_text())
    assert doc["suite"]["path"] == str(suite)  # as given


def test_save_predictions_and_cache_dir_options(tmp_path, data, ckpt):
    suite = write_suite(tmp_path / "s.yaml", data, PASSING)
    argv = ["run", str(suite), str(ckpt), "--quiet", "--out", str(tmp_path / "r")]
    extra = ["--cache-dir", str(tmp_path / "c"), "--save-predictions", str(tmp_path / "p.npz")]
    assert main(argv + extra + ["--batch-size", "7", "--workers", "0"]) == 0
    assert (tmp_path / "p.npz").is_file() and list((tmp_path / "c").rglob("*.npy"))


def test_describe_and_checks_print_names_literally(tmp_path, capsys):
    names = ["[/x]", "[bold red]", *(str(i) for i in range(8))]
    odd = save_tiny(tmp_path / "[link=x]odd.pt", seed=1, class_names=names)
    assert main(["describe", str(odd)]) == 0
    out = capsys.readouterr().out
    assert "[/x]" in out and "[bold red]" in out and "[link=x]odd.pt" in out
    assert main(["checks"]) == 0
    assert "list[str]" in capsys.readouterr().out  # a parameter's type, not rich markup
