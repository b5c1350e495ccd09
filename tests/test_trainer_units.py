"""The trainer's small parts: schedule, parameter groups, early stopping, config, run files."""

import itertools
import json
import math
from types import SimpleNamespace

import pytest
import torch

from qa.architectures import build_model
from qa.checkpoint import read_checkpoint
from qa.errors import InputError
from qa.io import atomic_path, stale_temporaries
from qa.preprocess import make_preprocessing
from trainer import checkpoint, init
from trainer.config import TrainConfig, config_from_flags
from trainer.data import epoch_seed
from trainer.distributed import World
from trainer.finetune import check_weights, stop_reason, update_best
from trainer.loop import warmup_cosine


def test_warmup_then_cosine_to_zero():
    factor = warmup_cosine(total_steps=100, warmup_steps=10)
    assert [factor(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    after = [factor(s) for s in range(10, 100)]
    assert all(a >= b for a, b in itertools.pairwise(after))
    assert factor(55) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(100) == pytest.approx(0.0)
    assert warmup_cosine(10, 0)(0) == pytest.approx(1.0)


def test_param_groups_give_the_head_its_own_rate_and_spare_norms_from_decay():
    model = build_model("resnet18", {"num_classes": 4})
    groups = init.param_groups(model, lr=1e-2, backbone_lr=1e-3, weight_decay=0.05)
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert by_id[id(model.fc.weight)]["lr"] == 1e-2
    assert by_id[id(model.fc.weight)]["weight_decay"] == 0.05
    assert by_id[id(model.fc.bias)]["weight_decay"] == 0.0
    assert by_id[id(model.conv1.weight)]["lr"] == 1e-3
    assert by_id[id(model.bn1.weight)] == by_id[id(model.layer1[0].bn1.bias)]
    assert by_id[id(model.bn1.weight)]["weight_decay"] == 0.0
    assert len(by_id) == len(list(model.parameters()))


def test_frozen_backbone_leaves_only_the_head_in_the_optimiser():
    model = build_model("resnet18", {"num_classes": 4})
    init.freeze_backbone(model)
    groups = init.param_groups(model, lr=1e-2, backbone_lr=1e-3, weight_decay=0.0)
    trained = {id(p) for g in groups for p in g["params"]}
    assert trained == {id(model.fc.weight), id(model.fc.bias)}
    model.train()
    init.hold_frozen_norms(model)
    assert not model.bn1.training and model.training


@pytest.mark.parametrize(
    ("metric", "values", "improved"),
    [
        ("val_acc", [0.5, 0.7, 0.7, 0.6], [True, True, False, False]),
        ("val_loss", [1.0, 0.8, 0.9, 0.7], [True, True, False, True]),
    ],
)
def test_best_metric_and_patience(metric, values, improved):
    run = SimpleNamespace(cfg=TrainConfig(metric=metric, patience=2), best={}, bad_epochs=0)
    seen = []
    for epoch, value in enumerate(values, 1):
        seen.append(update_best(run, {"epoch": epoch, "val_acc": 0.0, metric: value}))
    assert seen == improved
    assert (stop_reason(run, {"val_acc": 0.0}) is not None) == (improved[-2:] == [False, False])


def test_resume_keeps_the_recorded_config_except_flags_given_again():
    saved = TrainConfig(data="d", out="o", lr=0.5, epochs=4).__dict__
    cfg = config_from_flags({"resume": "o/last.pt", "epochs": 6}, saved)
    assert (cfg.lr, cfg.epochs, cfg.data, cfg.resume) == (0.5, 6, "d", "o/last.pt")
    with pytest.raises(InputError, match="unknown keys"):
        config_from_flags({}, {**saved, "mystery": 1})


def test_epoch_seeds_differ_by_seed_epoch_and_rank():
    seeds = {epoch_seed(s, e, r) for s in range(3) for e in range(3) for r in range(3)}
    assert len(seeds) == 27
    assert epoch_seed(1, 2, 0) == epoch_seed(1, 2, 0) < 2**63


def test_best_pt_keeps_its_bytes_when_last_pt_moves_on(tmp_path):
    def ckpt(value: float) -> dict:
        return {
            "arch": "resnet18",
            "arch_kwargs": {"num_classes": 1},
            "class_names": ["x"],
            "preprocessing": make_preprocessing(8),
            "state_dict": {"w": torch.full((2,), value)},
        }

    checkpoint.save_run(tmp_path, ckpt(1.0), best=True)
    checkpoint.save_run(tmp_path, ckpt(2.0), best=False)
    assert read_checkpoint(tmp_path / "best.pt")["state_dict"]["w"][0] == 1.0
    assert read_checkpoint(tmp_path / "last.pt")["state_dict"]["w"][0] == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    torch.manual_seed(5)
    state = checkpoint.rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = torch.rand(3)
    torch.rand(10)
    checkpoint.restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected)


def test_metrics_log_is_cut_back_to_the_resumed_epoch(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3)) + '{"epo')
    checkpoint.start_metrics_log(log, through_epoch=2)
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2]
    checkpoint.start_metrics_log(log, through_epoch=0)
    assert log.read_text() == ""


def test_stale_temporaries_match_what_atomic_path_leaves_and_nothing_else(tmp_path):
    (tmp_path / ".last.pt.tmp").write_text("no random part: not atomic_path's")
    (tmp_path / "x.last.pt.abcdefgh.tmp").write_text("another name")
    with atomic_path(tmp_path / "last.pt") as tmp:
        tmp.write_bytes(b"half a checkpoint")
        assert stale_temporaries(tmp_path, ["last.pt", "best.pt"]) == [tmp]
    assert stale_temporaries(tmp_path, ["last.pt", "best.pt"]) == []


def test_weights_gone_non_finite_stop_the_run(tmp_path):
    module = torch.nn.BatchNorm1d(2)
    cfg = TrainConfig(out=str(tmp_path), lr=0.5)
    run = SimpleNamespace(cfg=cfg, module=module, world=World(), epoch=3, best={"epoch": 2})
    check_weights(run, 4)
    module.running_var[1] = float("inf")
    with pytest.raises(InputError) as raised:
        check_weights(run, 4)
    assert str(raised.value) == (
        "training diverged in epoch 4, running_var became non-finite; lower --lr (now 0.5) "
        f"or set --grad-clip; {tmp_path / 'last.pt'} keeps epoch 3, best.pt epoch 2"
    )


def _allocated_bytes(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0)


def test_an_optimiser_step_is_adamw_without_parameter_sized_temporaries():
    # The for-loop AdamW allocated twice the parameters' bytes a step, which the allocator
    # paged in afresh each time: about a third of a CPU training step, and the throughput gap.
    torch.manual_seed(0)
    model = build_model("resnet18", {"num_classes": 4})
    reference = build_model("resnet18", {"num_classes": 4})
    reference.load_state_dict(model.state_dict())
    optimizer = init.make_optimizer(model, lr=1e-2, backbone_lr=1e-3, weight_decay=0.05)
    plain = torch.optim.AdamW(init.param_groups(reference, 1e-2, 1e-3, 0.05), foreach=False)
    for _ in range(3):
        for a, b in zip(model.parameters(), reference.parameters(), strict=True):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        plain.step()
        allocated = _allocated_bytes(optimizer.step)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert allocated < param_bytes / 100
