"""`qa run`'s outputs: the report set always describes the last run, errors included, and an
unusable output path is one line and exit 2 before any model is loaded."""

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers import write_suite

from qa.cli import main
from qa.report import markdown

PASSING = "- {kind: top1_accuracy, min: 0.0}\n"
FAILING = "- {kind: top1_accuracy, min: 0.99}\n"
FILES = ["junit.xml", "result.html", "result.json", "summary.md"]


def _run(suite, ckpt, out, *extra):
    return main(["run", str(suite), str(ckpt), "--out", str(out), "--no-cache", "--quiet", *extra])


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.removeprefix("error: ").rstrip("\n")


def _read_only(monkeypatch, folder: Path) -> None:
    """Make `folder` read-only for qa: by its mode, and for root (whom modes do not stop) by
    what os.access answers, which is what qa consults before a run."""
    folder.chmod(0o555)  # the caller restores 0o755
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if Path(p) == folder else real(p, mode)
        )


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model is loaded or a run starts: output paths are checked first."""
    import qa.application

    def never(*args, **kwargs):
        raise AssertionError("a model was loaded before the output paths were checked")

    monkeypatch.setattr(qa.application, "load_checkpoint", never)


def _missing_checkpoint(tmp_path, data, ckpt):
    return write_suite(tmp_path / "s.yaml", data, PASSING), tmp_path / "missing.pt"


def _malformed_suite(tmp_path, data, ckpt):
    suite = tmp_path / "bad.yaml"
    suite.write_text(f"name: t\ndata: {{eval: {data}}}\nchecks:\n  - {{kind: top1_accuracy}}\n")
    return suite, ckpt


@pytest.mark.parametrize("make", [_missing_checkpoint, _malformed_suite])
def test_a_run_stopped_by_bad_input_replaces_every_report_with_the_error(
    tmp_path, data, ckpt, capsys, monkeypatch, make
):
    out = tmp_path / "reports"
    assert _run(write_suite(tmp_path / "ok.yaml", data, PASSING), ckpt, out) == 0  # a PASS...
    capsys.readouterr()
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    suite, checkpoint = make(tmp_path, data, ckpt)
    assert _run(suite, checkpoint, out) == 2  # ...then bad input
    captured = capsys.readouterr()
    message = _one_line(captured.err)
    assert captured.out == ""
    assert sorted(p.name for p in out.iterdir()) == FILES
    result = json.loads((out / "result.json").read_text())
    assert (result["schema_version"], result["verdict"], result["exit_code"]) == (2, "error", 2)
    assert result["error"] == {"kind": "input", "message": message}
    root = ET.fromstring((out / "junit.xml").read_text())
    assert (root.get("tests"), root.get("errors"), root.get("failures")) == ("1", "1", "0")
    assert root.find("testcase/error").get("message") == message
    for name in ("summary.md", "result.html"):
        text = (out / name).read_text()
        assert "ERROR" in text and "PASS" not in text, name
    assert markdown.literal(message) in (out / "summary.md").read_text()  # as literal Markdown
    assert summary.read_text() == (out / "summary.md").read_text() + "\n"
    for fmt in ("md", "junit", "html", "terminal"):  # `qa report` re-renders the error
        assert main(["report", str(out / "result.json"), "--format", fmt]) == 0
        assert "qa run" in capsys.readouterr().out


def test_an_out_that_is_a_file_is_one_line_before_any_work(tmp_path, data, ckpt, capsys, no_model):
    out = tmp_path / "reports"
    out.write_text("a file, not a folder")
    assert _run(write_suite(tmp_path / "s.yaml", data, PASSING), ckpt, out) == 2
    assert _one_line(capsys.readouterr().err) == f"--out {out}: expected a folder, found a file"
    assert out.read_text() == "a file, not a folder"


def test_a_read_only_out_is_one_line_before_any_work(
    tmp_path, data, ckpt, capsys, monkeypatch, no_model
):
    out = tmp_path / "ro"
    out.mkdir()
    _read_only(monkeypatch, out)
    try:
        assert _run(write_suite(tmp_path / "s.yaml", data, PASSING), ckpt, out / "reports") == 2
    finally:
        out.chmod(0o755)
    message = _one_line(capsys.readouterr().err)
    assert message == f"--out {out / 'reports'}: expected a writable folder, found {out} read-only"
    assert list(out.iterdir()) == []


def _folder(tmp_path, monkeypatch):
    folder = tmp_path / "predictions"
    folder.mkdir()
    return folder, "expected a file name, found a folder"


def _in_read_only_folder(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    _read_only(monkeypatch, folder)
    return folder / "p.npz", f"expected a writable folder, found {folder} read-only"


@pytest.mark.parametrize("make", [_folder, _in_read_only_folder])
def test_an_unwritable_save_predictions_is_one_line_before_any_model_loads(
    tmp_path, data, ckpt, capsys, monkeypatch, no_model, make
):
    target, expected = make(tmp_path, monkeypatch)
    out = tmp_path / "reports"
    suite = write_suite(tmp_path / "s.yaml", data, PASSING)
    try:
        assert _run(suite, ckpt, out, "--save-predictions", str(target)) == 2
    finally:
        target.parent.chmod(0o755)
    message = _one_line(capsys.readouterr().err)
    assert message == f"--save-predictions {target}: {expected}"
    assert json.loads((out / "result.json").read_text())["error"]["message"] == message


def test_reports_that_cannot_be_renamed_keep_the_previous_set_and_the_verdict_stands(
    tmp_path, data, ckpt, capsys, monkeypatch
):
    out = tmp_path / "reports"
    assert _run(write_suite(tmp_path / "f.yaml", data, FAILING), ckpt, out) == 1
    before = {p.name: p.read_text() for p in out.iterdir()}
    capsys.readouterr()
    real, renames = os.replace, []

    def second_rename_fails(src, dst):
        if Path(dst).parent == out:
            renames.append(dst)
            if len(renames) == 2:
                raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", second_rename_fails)
    assert _run(write_suite(tmp_path / "p.yaml", data, PASSING), ckpt, out) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("PASS")
    assert _one_line(captured.err).startswith(f"--out {out}: the reports could not be written (")
    assert {p.name: p.read_text() for p in out.iterdir()} == before  # all of the FAIL run


@pytest.mark.parametrize(
    "interruption", [OSError(28, "No space left on device"), KeyboardInterrupt]
)
def test_a_predictions_write_that_stops_halfway_leaves_no_file(
    tmp_path, data, ckpt, capsys, monkeypatch, interruption
):
    def half_then_stop(f, array, **options):
        f.write(b"\x93NUMPY half of an array")
        raise interruption

    monkeypatch.setattr(np.lib.format, "write_array", half_then_stop)
    suite = write_suite(tmp_path / "s.yaml", data, PASSING)
    target = tmp_path / "pred" / "p.npz"
    code = _run(suite, ckpt, tmp_path / "reports", "--save-predictions", str(target))
    assert list(target.parent.iterdir()) == []  # neither the file nor a temporary one
    if interruption is KeyboardInterrupt:
        assert code == 130
        return
    assert code == 2
    message = _one_line(capsys.readouterr().err)
    assert message.startswith(f"--save-predictions {target}: cannot write the predictions (")
