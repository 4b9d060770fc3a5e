"""Hyperparameters, optimiser groups, warm-up and decay schedule, EMA: YOLOv5 v7.0 train.py semantics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ascend_slim.errors import AscendSlimError
from ascend_slim.model.yolo import YOLOv5
from ascend_slim.train.ema import ModelEMA
from ascend_slim.train.hyp import DEFAULT_HYP, load_hyp
from ascend_slim.train.optim import Schedule, accumulate_steps, build_optimizer, scaled_weight_decay


# -- hyp ---------------------------------------------------------------------------------------------------
def test_defaults_are_scratch_low() -> None:
    hyp = load_hyp()
    assert (hyp["lr0"], hyp["lrf"], hyp["momentum"], hyp["weight_decay"]) == (0.01, 0.01, 0.937, 0.0005)
    assert (hyp["warmup_epochs"], hyp["warmup_momentum"], hyp["warmup_bias_lr"]) == (3.0, 0.8, 0.1)
    assert (hyp["box"], hyp["cls"], hyp["obj"], hyp["anchor_t"], hyp["fl_gamma"]) == (0.05, 0.5, 1.0, 4.0, 0.0)
    assert (hyp["mosaic"], hyp["fliplr"], hyp["scale"], hyp["translate"], hyp["mixup"]) == (1.0, 0.5, 0.5, 0.1, 0.0)


def test_hyp_yaml_overrides_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "hyp.yaml"
    path.write_text("lr0: 0.001\nmosaic: 0\nanchors: 3.4  # AutoAnchor key, read and ignored\n")
    hyp = load_hyp(path)
    assert hyp["lr0"] == 0.001 and hyp["mosaic"] == 0.0 and hyp["lrf"] == DEFAULT_HYP["lrf"]
    assert "anchors" not in hyp
    assert load_hyp(path, lr0=0.02)["lr0"] == 0.02
    path.write_text("lr_0: 0.01\n")
    with pytest.raises(AscendSlimError, match="unknown hyperparameter 'lr_0'"):
        load_hyp(path)
    path.write_text("fliplr: 1.5\n")
    with pytest.raises(AscendSlimError, match=r"fliplr=1.5 is outside \[0, 1\]"):
        load_hyp(path)
    path.write_text("lr0: fast\n")
    with pytest.raises(AscendSlimError, match="lr0 must be a finite number"):
        load_hyp(path)
    path.write_text("lr0: 1e-3\nwarmup_epochs: .nan\n")  # YAML 1.1 reads 1e-3 as a string: still a number
    with pytest.raises(AscendSlimError, match="warmup_epochs must be a finite number"):
        load_hyp(path)
    path.write_text("lr0: 1e-3\nmomentum: '0.9'\n")
    assert load_hyp(path)["lr0"] == 0.001 and load_hyp(path)["momentum"] == 0.9
    path.write_text("lr0: 1e30\n")
    with pytest.raises(AscendSlimError, match=r"lr0=1e30 is outside"):
        load_hyp(path)
    path.write_text("- lr0\n")
    with pytest.raises(AscendSlimError, match="must be a mapping"):
        load_hyp(path)
    with pytest.raises(AscendSlimError, match="not found"):
        load_hyp(tmp_path / "missing.yaml")


# -- optimiser -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model() -> YOLOv5:
    return YOLOv5.from_yaml("yolov5n", nc=2, names=["a", "b"])


def test_three_parameter_groups(model: YOLOv5) -> None:
    opt = build_optimizer(model, "SGD", 0.01, 0.937, 5e-4)
    bias, weight, norm = opt.param_groups
    assert (bias["name"], weight["name"], norm["name"]) == ("bias", "weight", "norm_weight")
    assert (bias["weight_decay"], weight["weight_decay"], norm["weight_decay"]) == (0.0, 5e-4, 0.0)
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.937
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert {id(p) for p in norm["params"]} == {id(m.weight) for m in bns}
    assert {id(p) for p in weight["params"]} == {id(m.weight) for m in convs}
    assert {id(p) for p in bias["params"]} == {id(m.bias) for m in bns + convs if m.bias is not None}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    adam = build_optimizer(model, "Adam", 0.001, 0.9, 5e-4)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.9, 0.999)
    assert isinstance(build_optimizer(model, "AdamW", 0.001, 0.9, 5e-4), torch.optim.AdamW)
    with pytest.raises(AscendSlimError, match="unknown optimizer"):
        build_optimizer(model, "RMSProp", 0.01, 0.9, 0.0)


def test_accumulation_and_weight_decay_scaling() -> None:
    assert [accumulate_steps(b) for b in (1, 16, 24, 64, 128)] == [64, 4, 3, 1, 1]
    assert scaled_weight_decay(5e-4, 16) == pytest.approx(5e-4)  # 16 x 4 = 64
    assert scaled_weight_decay(5e-4, 24) == pytest.approx(5e-4 * 72 / 64)
    assert scaled_weight_decay(5e-4, 128) == pytest.approx(1e-3)


def test_warmup_then_linear_decay(model: YOLOv5) -> None:
    opt = build_optimizer(model, "SGD", 0.01, 0.937, 5e-4)
    sched = Schedule.from_hyp(DEFAULT_HYP, epochs=10, batches_per_epoch=50, batch_size=16)
    assert sched.warmup_iters == 150  # 3 epochs x 50 batches (at least 100)

    def lrs(ni: int, epoch: int) -> list[float]:
        sched.apply(opt, ni, epoch)
        return [g["lr"] for g in opt.param_groups]

    assert lrs(0, 0) == pytest.approx([0.1, 0.0, 0.0])
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.8)
    lf2 = (1 - 2 / 10) * (1 - 0.01) + 0.01
    # Half-way through warm-up, in epoch 1: bias falls from 0.1 towards 0.01 lf(1), the others rise from 0.
    lf1 = (1 - 1 / 10) * 0.99 + 0.01
    assert lrs(75, 1) == pytest.approx([0.05 + 0.005 * lf1, 0.005 * lf1, 0.005 * lf1])
    assert opt.param_groups[1]["momentum"] == pytest.approx((0.8 + 0.937) / 2)
    assert lrs(150, 3) == pytest.approx([0.01 * ((1 - 0.3) * 0.99 + 0.01)] * 3)
    assert lrs(400, 8) == pytest.approx([0.01 * ((1 - 0.8) * 0.99 + 0.01)] * 3)
    assert opt.param_groups[2]["momentum"] == pytest.approx(0.937)
    assert sched.lr_factor(10) == pytest.approx(0.01) and lf2 == pytest.approx(sched.lr_factor(2))
    # Accumulation grows from 1 to 64/16 during warm-up.
    assert [sched.accumulate(ni) for ni in (0, 25, 75, 150, 151, 1000)] == [1, 2, 2, 4, 4, 4]


def test_cosine_and_minimum_warmup() -> None:
    sched = Schedule.from_hyp(DEFAULT_HYP, epochs=10, batches_per_epoch=5, batch_size=16, cos_lr=True)
    assert sched.warmup_iters == 100
    assert sched.lr_factor(0) == pytest.approx(1.0) and sched.lr_factor(10) == pytest.approx(0.01)
    assert sched.lr_factor(5) == pytest.approx((1 + 0.01) / 2)
    assert sched.lr_factor(2) == pytest.approx((1 - math.cos(0.2 * math.pi)) / 2 * (0.01 - 1) + 1)


def test_adam_has_no_momentum_warmup(model: YOLOv5) -> None:
    opt = build_optimizer(model, "Adam", 0.001, 0.937, 5e-4)
    Schedule.from_hyp(DEFAULT_HYP, epochs=3, batches_per_epoch=5, batch_size=16).apply(opt, 0, 0)
    assert "momentum" not in opt.param_groups[0] and opt.param_groups[0]["betas"] == (0.937, 0.999)


# -- EMA -------------------------------------------------------------------------------------------------
def test_ema_ramp_and_average() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    ema = ModelEMA(net)
    assert not any(p.requires_grad for p in ema.ema.parameters()) and not ema.ema.training
    start = {k: v.clone() for k, v in ema.ema.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].running_mean.fill_(2.0)
    ema.update(net)
    d = 0.9999 * (1 - math.exp(-1 / 2000))
    assert ema.decay_at(1) == pytest.approx(d)
    for key, value in ema.ema.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, d * start[key] + (1 - d) * net.state_dict()[key])
    assert ema.ema[1].num_batches_tracked.item() == 0  # integer buffers are not averaged
    assert ema.decay_at(10**6) == pytest.approx(0.9999)
    state = ema.state_dict()
    other = ModelEMA(nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)))
    other.load_state_dict(state)
    assert other.updates == 1
    torch.testing.assert_close(other.ema.state_dict(), ema.ema.state_dict())
