"""ONNX models: `trainer export --onnx`, reading one (metadata or the suite's `model:`), gating
it, describing it, and what is refused."""

import hashlib
import json
import sys

import numpy as np
import onnx
import pytest
import torch
from helpers import (
    DIGITS,
    PREPROCESSING,
    SIZE,
    SPEC,
    evidence_of,
    save_tiny,
    write_data,
    write_suite,
)
from onnx import TensorProto, helper, numpy_helper

from qa.cli import main
from qa.errors import InputError
from qa.evidence import CLEAN
from qa.formats import load_any
from qa.suite import ModelSpec, load_suite
from qa.torchfile import archive_kind
from trainer.cli import main as trainer_main
from trainer.export import export_onnx

CHECKS = "- {kind: top1_accuracy, min: 0}\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The whole real digits test split (270 images): the demo's data at the tests' size."""
    return write_data(tmp_path_factory.mktemp("digits"), per_class=1000)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A qa checkpoint (temperature 1.5) and its ONNX export, made by `trainer export`."""
    folder = tmp_path_factory.mktemp("onnx")
    ckpt = save_tiny(folder / "c.pt", seed=5, temperature=1.5)
    assert trainer_main(["export", "--onnx", str(ckpt), "--out", str(folder / "m.onnx")]) == 0
    return ckpt, folder / "m.onnx"


def _suite(tmp_path, data, checks=CHECKS, head=""):
    return load_suite(write_suite(tmp_path / "s.yaml", data, checks, head))


def _spec():
    """The suite's `model:` as SPEC writes it."""
    return ModelSpec(
        arch="resnet18", class_names=DIGITS, preprocessing={"resize": SIZE, "crop": SIZE}
    )


def _run(*args) -> int:
    return main(["run", *map(str, args), "--no-cache", "--quiet"])


def _foreign(path, classes=10, **props):
    """An ONNX classifier made without qa: mean of each channel, then a linear layer."""
    weight = np.random.default_rng(0).normal(size=(classes, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "w"], ["logits"], transB=1),
        ],
        "foreign",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", classes])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    helper.set_model_props(model, props)
    onnx.save_model(model, path)
    return path


def test_the_export_gives_the_checkpoints_logits_within_1e_4(exported, data, tmp_path):
    ckpt, path = exported
    suite = _suite(tmp_path, data)
    torch_model, onnx_model = load_any(ckpt), load_any(path)
    expected = evidence_of(suite, torch_model, [CLEAN]).logits()
    logits = evidence_of(suite, onnx_model, [CLEAN]).logits()
    assert logits.shape == (270, 10)
    assert np.abs(logits - expected).max() <= 1e-4
    assert onnx_model.temperature == 1.5 and onnx_model.class_names == DIGITS
    assert onnx_model.preprocessing == torch_model.preprocessing
    assert onnx_model.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert onnx_model.provenance["source_sha256"] == torch_model.digest
    assert onnx_model.provenance["format"] == "onnx"
    assert onnx_model.module(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 10)  # dynamic batch


def test_qa_run_gates_an_onnx_model_and_reports_its_format(exported, data, tmp_path):
    _, path = exported
    suite = write_suite(tmp_path / "s.yaml", data, CHECKS)
    assert _run(suite, path, "--out", tmp_path / "r") == 0
    report = json.loads((tmp_path / "r" / "result.json").read_text())
    assert report["checkpoint"]["provenance"]["format"] == "onnx"
    assert report["checkpoint"]["temperature"] == 1.5
    strict = write_suite(tmp_path / "hard.yaml", data, "- {kind: top1_accuracy, min: 0.99}\n")
    assert _run(strict, path, "--out", tmp_path / "r") == 1  # a random model misses it


def test_the_export_is_faithful_as_a_regression_gate(exported, data, tmp_path):
    ckpt, path = exported
    checks = "- {kind: prediction_agreement, max_flips: 0, max_logit_diff: 0.0001}\n"
    suite = write_suite(tmp_path / "s.yaml", data, checks, f"baseline: {ckpt}\n")
    assert _run(suite, path, "--out", tmp_path / "r") == 0
    (check,) = json.loads((tmp_path / "r" / "result.json").read_text())["checks"]
    assert check["metrics"]["flips"] == 0 and check["metrics"]["max_logit_diff"] <= 1e-4
    assert check["metrics"]["baseline_is_source"] is True
    other = save_tiny(tmp_path / "other.pt", seed=6)
    assert _run(suite, path, "--baseline", other, "--out", tmp_path / "r") == 1
    (check,) = json.loads((tmp_path / "r" / "result.json").read_text())["checks"]
    assert check["metrics"]["flips"] == len(check["details"]["flips"]) > 0
    assert check["metrics"]["baseline_is_source"] is False


def test_qa_describe_prints_the_models_metadata(exported, capsys):
    ckpt, path = exported
    assert main(["describe", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"class_names               {json.dumps(DIGITS)}" in lines
    assert "format                    onnx" in lines
    assert main(["describe", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["temperature"] == 1.5 and info["inputs"] == {"images": ["batch", 3, SIZE, SIZE]}
    assert info["provenance"]["source_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()


def test_a_model_without_metadata_takes_the_suites_model(tmp_path, data, capsys):
    path = _foreign(tmp_path / "f.onnx")
    suite = write_suite(tmp_path / "bare.yaml", data, CHECKS)
    assert _run(suite, path, "--out", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not name its classes" in err and "model:" in err
    model = load_any(path, _suite(tmp_path, data, head=SPEC).model)
    assert model.class_names == DIGITS and model.preprocessing["crop"] == SIZE
    logits = evidence_of(_suite(tmp_path, data, head=SPEC), model, [CLEAN]).logits()
    assert logits.shape == (270, 10) and np.isfinite(logits).all()


def test_the_suite_and_the_metadata_must_agree(exported, tmp_path, data):
    _, path = exported
    assert load_any(path, _suite(tmp_path, data, head=SPEC).model).class_names == DIGITS
    reversed_names = SPEC.replace(str(DIGITS), str(DIGITS[::-1]))
    with pytest.raises(InputError, match=r"model.class_names .* conflict with the model's"):
        load_any(path, _suite(tmp_path, data, head=reversed_names).model)
    bigger = SPEC.replace(f"resize: {SIZE}", f"resize: {SIZE * 2}")
    with pytest.raises(InputError, match=r"preprocessing.resize 32 conflicts .* resize 16"):
        load_any(path, _suite(tmp_path, data, head=bigger).model)


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"qa.class_names": "[0, 1"}, r"metadata_props qa.class_names: expected a JSON value"),
        (
            {"qa.temperature": "-1"},
            r"metadata_props qa.temperature: expected a number > 0, found -1",
        ),
        ({"qa.colour": '"red"'}, r"metadata_props qa.colour: unknown"),
        (
            {"qa.class_names": '["a", "b"]', "qa.preprocessing": json.dumps(PREPROCESSING)},
            r"expected the first output to be \(batch, 2\), one score per class, found \['n', 10\]",
        ),
    ],
)
def test_bad_metadata_is_one_line(tmp_path, props, expected):
    with pytest.raises(InputError, match=expected) as caught:
        load_any(_foreign(tmp_path / "f.onnx", **props))
    assert "\n" not in str(caught.value)


def test_a_damaged_onnx_file_is_one_line(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07 not a protobuf at all")
    with pytest.raises(InputError, match=r"bad\.onnx: not a readable ONNX model") as caught:
        load_any(tmp_path / "bad.onnx")
    assert "\n" not in str(caught.value)
    model = onnx.load(_foreign(tmp_path / "f.onnx"))
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    onnx.save_model(model, tmp_path / "bytes.onnx")
    with pytest.raises(InputError, match=r"float32 input .*, found an input of uint8"):
        load_any(tmp_path / "bytes.onnx", _spec())
    (tmp_path / "empty.onnx").write_bytes(b"\x08\x07")  # parses: a model with no graph
    with pytest.raises(InputError, match=r"expected one float32 input"):
        load_any(tmp_path / "empty.onnx", _spec())


def test_custom_operators_and_external_data_are_refused(tmp_path):
    model = onnx.load(_foreign(tmp_path / "f.onnx"))
    model.graph.node[0].domain = "com.example.evil"
    onnx.save_model(model, tmp_path / "custom.onnx")
    with pytest.raises(InputError, match=r"custom domain 'com\.example\.evil'"):
        load_any(tmp_path / "custom.onnx")
    model = onnx.load(_foreign(tmp_path / "f.onnx"))
    onnx.save_model(
        model, tmp_path / "ext.onnx", save_as_external_data=True, location="w.bin", size_threshold=0
    )
    assert (tmp_path / "w.bin").exists()
    with pytest.raises(InputError, match="tensor 'w' is stored as external data"):
        load_any(tmp_path / "ext.onnx")


def test_operators_of_the_models_own_local_functions_are_fine(tmp_path):
    model = onnx.load(_foreign(tmp_path / "f.onnx"))
    twice = helper.make_function(
        "local.fn",
        "Twice",
        ["x"],
        ["y"],
        [helper.make_node("Add", ["x", "x"], ["y"])],
        [helper.make_opsetid("", 18)],
    )
    model.functions.append(twice)
    model.opset_import.append(helper.make_opsetid("local.fn", 1))
    model.graph.node[1].output[0] = "flat1"
    model.graph.node.insert(2, helper.make_node("Twice", ["flat1"], ["flat"], domain="local.fn"))
    onnx.save_model(model, tmp_path / "local.onnx")
    image = torch.rand(1, 3, SIZE, SIZE)
    plain = load_any(tmp_path / "f.onnx", _spec()).module(image)
    local = load_any(tmp_path / "local.onnx", _spec()).module(image)
    torch.testing.assert_close(local, 2 * plain)
    model.graph.node[2].op_type = "Thrice"  # the domain, but no function of that name
    onnx.save_model(model, tmp_path / "unknown.onnx")
    with pytest.raises(InputError, match=r"custom domain 'local\.fn' \(Thrice\)"):
        load_any(tmp_path / "unknown.onnx", _spec())


def test_onnx_bytes_are_told_apart_from_torch_files(exported):
    ckpt, path = exported
    assert archive_kind(path.read_bytes()) == "onnx"
    assert archive_kind(ckpt.read_bytes()) == "pickle"


def test_no_gradients_and_no_reduced_precision(exported):
    model = load_any(exported[1])
    images = torch.zeros(2, 3, SIZE, SIZE)
    with pytest.raises(InputError, match="adversarial checks need the torch checkpoint"):
        model.module(images.requires_grad_())
    with (
        torch.autocast("cpu", dtype=torch.bfloat16),
        pytest.raises(InputError, match="use --precision fp32"),
    ):
        model.module(torch.zeros(2, 3, SIZE, SIZE))


def test_without_the_extra_the_message_says_what_to_install(exported, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(InputError, match=r"pip install 'qa\[onnx\]'"):
        load_any(exported[1])
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(InputError, match=r"pip install 'qa\[onnx\]'"):
        export_onnx(exported[0], tmp_path / "x.onnx")


def test_export_refuses_what_is_no_qa_checkpoint(tmp_path, capsys):
    torch.save({"w": torch.zeros(2)}, tmp_path / "sd.pt")
    out = tmp_path / "m.onnx"
    assert trainer_main(["export", "--onnx", str(tmp_path / "sd.pt"), "--out", str(out)]) == 2
    assert "expected a qa checkpoint" in capsys.readouterr().err and not out.exists()
    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"x")
    assert trainer_main(["export", "--onnx", str(ckpt), "--out", str(ckpt)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and ckpt.read_bytes() == b"x"
