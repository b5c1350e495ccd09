"""`qa calibrate`: the fitted temperature is stored, applied on load, and repairs the NLL."""

import pytest
import torch
from helpers import save_tiny, tiny_module, write_data

from qa.calibrate import calibrate_checkpoint
from qa.checkpoint import load_model, read_checkpoint
from qa.errors import InputError


@pytest.fixture
def overconfident(tmp_path):
    module = tiny_module(seed=1)
    with torch.no_grad():
        module.fc.weight.mul_(50.0)  # same predictions, far too confident
        module.fc.bias.mul_(50.0)
    return save_tiny(tmp_path / "over.pt", module=module)


def test_calibrate_writes_a_checkpoint_whose_temperature_repairs_the_nll(tmp_path, overconfident):
    data = write_data(tmp_path / "val", per_class=6)
    fitted = calibrate_checkpoint(overconfident, data, tmp_path / "cal.pt")
    assert fitted["temperature"] > 1.0
    assert fitted["after"]["nll"] < fitted["before"]["nll"]
    ckpt = read_checkpoint(tmp_path / "cal.pt")
    assert ckpt["temperature"] == pytest.approx(fitted["temperature"])
    record = ckpt["provenance"]["calibration"]
    assert record["n"] == 60 and record["data"] == str(data)
    assert ckpt["provenance"]["config"] == {"seed": 0}  # the original provenance is kept
    assert load_model(tmp_path / "cal.pt").temperature == pytest.approx(fitted["temperature"])


def test_recalibrating_composes_temperatures(tmp_path, overconfident):
    data = write_data(tmp_path / "val", per_class=6)
    first = calibrate_checkpoint(overconfident, data, tmp_path / "a.pt")
    second = calibrate_checkpoint(tmp_path / "a.pt", data, tmp_path / "b.pt")
    assert second["previous_temperature"] == pytest.approx(first["temperature"])
    assert second["temperature"] == pytest.approx(first["temperature"] * second["fitted_factor"])


def test_too_small_calibration_data_says_the_minimum(tmp_path, overconfident):
    data = write_data(tmp_path / "val", per_class=2)
    with pytest.raises(InputError, match="20 images; fitting a temperature needs at least 50"):
        calibrate_checkpoint(overconfident, data, tmp_path / "cal.pt")
    assert not (tmp_path / "cal.pt").exists()


def test_refuses_to_overwrite_its_input(tmp_path, overconfident):
    with pytest.raises(InputError, match="refusing to overwrite"):
        calibrate_checkpoint(overconfident, tmp_path, overconfident)


def test_cli_prints_one_line_and_bad_data_is_exit_2(tmp_path, overconfident, capsys):
    from qa.cli import main

    data = write_data(tmp_path / "val", per_class=6)
    assert (
        main(
            ["calibrate", str(overconfident), "--data", str(data), "--out", str(tmp_path / "c.pt")]
        )
        == 0
    )
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{tmp_path / 'c.pt'}: T=") and "NLL" in out and "\n" not in out
    assert (
        main(
            [
                "calibrate",
                str(overconfident),
                "--data",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "d.pt"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: {tmp_path / 'nope'}: data folder not found (expected a folder of class folders)"
    )


def _calibrate(overconfident, data, out):
    from qa.cli import main

    return main(["calibrate", str(overconfident), "--data", str(data), "--out", str(out)])


def test_an_out_that_is_a_folder_is_exit_2_before_any_inference(
    tmp_path, overconfident, capsys, monkeypatch
):
    import qa.calibrate

    def never(*args, **kwargs):
        raise AssertionError("inference ran before --out was checked")

    monkeypatch.setattr(qa.calibrate, "infer", never)
    data = write_data(tmp_path / "val", per_class=6)
    assert _calibrate(overconfident, data, tmp_path) == 2
    assert (
        capsys.readouterr().err
        == f"error: --out {tmp_path}: expected a file name, found a folder\n"
    )


def test_a_read_only_out_folder_is_exit_2(tmp_path, overconfident, capsys, monkeypatch):
    import os

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root ignores modes: answer as the kernel would for anyone else
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: p != folder and real(p, m))
    try:
        assert _calibrate(overconfident, tmp_path, folder / "cal.pt") == 2
    finally:
        folder.chmod(0o755)
    err = capsys.readouterr().err
    assert (
        err
        == f"error: --out {folder / 'cal.pt'}: expected a writable folder, found {folder} read-only\n"
    )


@pytest.mark.parametrize(
    "interruption", [OSError(28, "No space left on device"), KeyboardInterrupt]
)
def test_a_write_that_stops_halfway_leaves_no_checkpoint(
    tmp_path, overconfident, capsys, monkeypatch, interruption
):
    real_save = torch.save

    def half_then_stop(obj, f, *args, **kwargs):
        real_save({"half": torch.zeros(3)}, f)
        raise interruption

    monkeypatch.setattr(torch, "save", half_then_stop)
    data = write_data(tmp_path / "val", per_class=6)
    out = tmp_path / "cal" / "c.pt"
    code = _calibrate(overconfident, data, out)
    assert list(out.parent.iterdir()) == []  # neither the checkpoint nor a temporary file
    assert code == (130 if interruption is KeyboardInterrupt else 2)
    if code == 2:
        err = capsys.readouterr().err
        assert (
            err.startswith(f"error: --out {out}: cannot write the checkpoint (")
            and err.count("\n") == 1
        )
