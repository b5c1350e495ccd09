"""qa.precision on the CPU: fp32 untouched, bf16 autocast close to fp32, channels_last exact;
the suite's `defaults.precision` and `qa run --precision` reaching the engine and the report."""

import copy

import pytest
import torch
from helpers import tiny_module, write_suite

import qa.application
from qa import precision
from qa.cli import main
from qa.errors import InputError
from qa.report import json_report

CPU = torch.device("cpu")
# bfloat16 keeps 8 bits of mantissa: over a random resnet18 at 32 px the logits move by about
# 1% of their norm (0.7-1.0% measured over seeds 0-3); 3% leaves room for other seeds and CPUs.
BF16_RELATIVE = 0.03
PASSING = "- {kind: top1_accuracy, min: 0.0}\n"


def _batch(seed: int = 0) -> torch.Tensor:
    return torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _logits(module, images, name: str) -> torch.Tensor:
    """One forward pass as the engine runs it at precision `name`, on the CPU."""
    module = precision.prepare(copy.deepcopy(module), CPU, name)
    with torch.inference_mode(), precision.autocast(CPU, name):
        return module(precision.to_input(images, CPU, name))


def test_fp32_is_bit_identical_to_no_wrapper():
    module, images = tiny_module(1), _batch()
    with torch.inference_mode():
        plain = module(images)
    ours = _logits(module, images, "fp32")
    assert ours.dtype == torch.float32 and torch.equal(ours, plain)
    prepared = precision.prepare(copy.deepcopy(module), CPU, "fp32")
    assert prepared.conv1.weight.is_contiguous()  # no layout change on the CPU at fp32
    assert not precision.to_input(images, CPU, "fp32").is_contiguous(
        memory_format=torch.channels_last
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_bf16_autocast_is_active_and_close_to_fp32(seed):
    module, images = tiny_module(seed), _batch(seed)
    reference = _logits(module, images, "fp32")
    low = _logits(module, images, "bf16")
    assert low.dtype == torch.bfloat16  # autocast ran the classifier in bfloat16
    error = (low.float() - reference).norm() / reference.norm()
    assert 0 < error < BF16_RELATIVE, float(error)


def test_channels_last_alone_changes_logits_by_float_rounding_only():
    module, images = tiny_module(2), _batch(2)
    reference = _logits(module, images, "fp32")
    prepared = precision.prepare(copy.deepcopy(module), CPU, "bf16")  # channels_last on the CPU
    batch = precision.to_input(images, CPU, "bf16")
    assert prepared.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert batch.is_contiguous(memory_format=torch.channels_last) and batch.dtype == images.dtype
    assert torch.equal(batch, images)
    with torch.inference_mode():  # no autocast: the layout is the only difference
        logits = prepared(batch)
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-5)


def test_fp16_is_refused_on_the_cpu_and_unknown_names_everywhere():
    assert precision.resolve("bf16", CPU) == "bf16"
    assert precision.resolve("fp16", torch.device("cuda")) == "fp16"
    with pytest.raises(InputError, match=r"^precision fp16 needs --device cuda; on the cpu"):
        precision.resolve("fp16", CPU)
    with pytest.raises(InputError, match=r"expected one of fp32, bf16, fp16, found 'fp8'"):
        precision.resolve("fp8", "cuda")


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # built, never entered, here
def test_autocast_context_per_precision():
    assert not isinstance(precision.autocast(CPU, "fp32"), torch.autocast)
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        context = precision.autocast("cuda", name)
        assert isinstance(context, torch.autocast) and context.fast_dtype == dtype
        assert context.device == "cuda"


def _requests(monkeypatch) -> list:
    """Every EvidenceRequest `qa run` hands the engine from here on (the run goes on)."""
    seen = []
    original = qa.application.build_evidence

    def spy(request):
        seen.append(request)
        return original(request)

    monkeypatch.setattr(qa.application, "build_evidence", spy)
    return seen


def test_the_suites_precision_or_the_flag_reaches_the_engine_and_the_report(
    tmp_path, monkeypatch, data, ckpt, capsys
):
    suite = write_suite(tmp_path / "s.yaml", data, PASSING, head="defaults: {precision: bf16}\n")
    requests, out = _requests(monkeypatch), tmp_path / "reports"
    run = ["run", str(suite), str(ckpt), "--out", str(out), "--no-cache", "--quiet"]
    assert main(run) == 0
    assert capsys.readouterr().out.rstrip().endswith("s at bf16")
    doc = json_report.load(out / "result.json")
    assert (doc["environment"]["device"], doc["environment"]["precision"]) == ("cpu", "bf16")
    assert "· bf16" in (out / "summary.md").read_text()
    assert main([*run, "--precision", "fp32", "--rehash"]) == 0
    assert " at " not in capsys.readouterr().out
    assert json_report.load(out / "result.json")["environment"]["precision"] == "fp32"
    assert [(r.precision, r.rehash) for r in requests] == [("bf16", False), ("fp32", True)]


def test_fp16_on_the_cpu_is_one_line_before_any_model_loads(
    tmp_path, monkeypatch, data, ckpt, capsys
):
    def no_model(*args):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(qa.application, "load_checkpoint", no_model)
    suite = write_suite(tmp_path / "s.yaml", data, PASSING)
    argv = ["run", str(suite), str(ckpt), "--out", str(tmp_path / "r"), "--precision", "fp16"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "error: precision fp16 needs --device cuda; on the cpu use bf16 or fp32\n"
