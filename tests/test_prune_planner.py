"""Channel groups from the module tree, importance, and the planner: midasklr threshold semantics, safety bound,
min-keep, round-to, FLOPs and latency targets, and the refusals."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from prune_cases import random_bn_model

from ascend_slim.errors import AscendSlimError
from ascend_slim.model import YOLOv5
from ascend_slim.model.checkpoint import load_weights
from ascend_slim.model.common import C3, SPP, SPPF, Concat, Focus
from ascend_slim.model.cost import model_cost
from ascend_slim.model.spec import spec_from_yaml
from ascend_slim.prune import Thresholds, build_graph, get_importance, prune_channels
from ascend_slim.prune.planner import macs_pricer, plan_target_flops, plan_target_latency
from ascend_slim.prune.surgery import prune_model


@pytest.fixture(scope="module")
def official(yolov5n_pt: Path) -> YOLOv5:
    return load_weights(yolov5n_pt)[0].eval()


@pytest.mark.parametrize("cfg", ["yolov5n", "yolov5s-v5", "yolov5m"])
def test_groups_follow_the_structure(cfg: str) -> None:
    """Residual groups = each shortcut C3's cv1 plus its Bottlenecks' cv2; Concat, SPP(F), Focus and Detect
    inputs are read from the layers' ``from``, not from known indices."""
    model = YOLOv5.from_yaml(cfg)
    graph = build_graph(model)
    expected_residual = []
    for i, layer in enumerate(model.model):
        name = f"model.{i}"
        if isinstance(layer, C3) and layer.m[0].add:
            expected_residual.append({f"{name}.cv1", *(f"{name}.m.{j}.cv2" for j in range(len(layer.m)))})
        if isinstance(layer, (SPP, SPPF)):
            segments = graph.inputs[f"{name}.cv2.conv"]
            assert len(segments) == (4 if isinstance(layer, SPPF) else len(layer.m) + 1)
            assert {s.group for s in segments} == {graph.unit_group[f"{name}.cv1"]}
        if isinstance(layer, Focus):
            assert [(s.group, s.width) for s in graph.inputs[f"{name}.conv.conv"]] == [(None, 3)] * 4
        if isinstance(layer, Concat):
            consumer = model.model[i + 1]
            widths = [s.width for s in graph.inputs[f"model.{i + 1}.cv1.conv"]]
            assert sum(widths) == consumer.cv1.conv.in_channels
            assert len(widths) == len(layer.f)
    assert [set(g.units) for g in graph.groups if len(g.units) > 1] == expected_residual
    detect = model.detect
    for k, src in enumerate(detect.f):
        (segment,) = graph.inputs[f"model.{detect.i}.m.{k}"]
        assert graph.groups[segment.group].units == [f"model.{src}.cv3"]
    assert sum(len(g.units) for g in graph.groups) == len(graph.units)


def test_importance_aggregates_coupled_groups_by_max(official: YOLOv5) -> None:
    graph = build_graph(official)
    modules = dict(official.named_modules())
    scores = get_importance("slim")(official, graph)
    group = next(g for g in graph.groups if len(g.units) > 2)
    gammas = torch.stack([modules[u].bn.weight.abs() for u in group.units])
    assert torch.equal(scores[group.index], gammas.amax(0))
    l1 = get_importance("l1")(official, graph)
    unit = graph.groups[0].units[0]
    assert torch.allclose(l1[0], modules[unit].conv.weight.abs().sum((1, 2, 3)))
    with pytest.raises(AscendSlimError, match="unknown channel-importance method"):
        get_importance("taylor")


def test_threshold_safety_bound_and_force(official: YOLOv5) -> None:
    graph = build_graph(official)
    scores = get_importance("slim")(official, graph)
    thresholds = Thresholds(graph, scores)
    flat = torch.cat(scores).sort().values
    bound = min(float(s.max()) for s in scores)
    assert thresholds.safety_bound == bound
    assert flat[thresholds.position(thresholds.max_safe_percent)] <= bound
    assert flat[int(flat.numel() * thresholds.max_safe_percent) + 1] > bound
    for percent in (0.0, 0.15, thresholds.max_safe_percent):
        plan = thresholds.plan(thresholds.position(percent))
        threshold = float(flat[int(flat.numel() * percent)])
        assert plan.threshold == threshold and not plan.forced
        for s, kept in zip(scores, plan.keep):  # midasklr: keep |gamma| >= threshold, nothing else
            assert torch.equal(kept, torch.nonzero(s >= threshold).flatten())
    too_far = thresholds.position(min(0.99, thresholds.max_safe_percent + 0.05))
    with pytest.raises(AscendSlimError, match="safety bound"):
        thresholds.plan(too_far)
    forced = thresholds.plan(too_far, force=True)
    assert forced.forced and min(k.numel() for k in forced.keep) == 1
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(AscendSlimError, match=r"\[0, 1\)"):
            thresholds.position(bad)


@pytest.mark.parametrize("round_to", [8, 16])
def test_round_to_and_min_keep(official: YOLOv5, round_to: int) -> None:
    graph = build_graph(official)
    scores = get_importance("slim")(official, graph)
    plain = Thresholds(graph, scores).plan(int(0.5 * sum(s.numel() for s in scores)), force=True)
    rounded = Thresholds(graph, scores, round_to=round_to, min_keep=0.25)
    plan = rounded.plan(rounded.position(0.5), force=True)
    for group, score, base, kept in zip(graph.groups, scores, plain.keep, plan.keep):
        n = kept.numel()
        assert n == group.width or (n % round_to == 0 and n >= round_to)
        assert n >= math.ceil(0.25 * group.width) and n >= base.numel()
        assert n - base.numel() < round_to + math.ceil(0.25 * group.width)
        assert set(base.tolist()) <= set(kept.tolist())  # rounding adds the next best channels
        dropped = torch.ones(group.width, dtype=torch.bool)
        dropped[kept] = False
        if dropped.any():
            assert score[kept].min() >= score[dropped].max()
    with pytest.raises(AscendSlimError, match=r"round-to 32 exceeds the width of model\.0"):
        Thresholds(graph, scores, round_to=32)  # the yolov5n stem has 16 channels


def test_target_flops_is_met_by_the_least_pruning() -> None:
    model = random_bn_model("yolov5n", seed=5)
    graph = build_graph(model)
    thresholds = Thresholds(graph, get_importance("slim")(model, graph), round_to=8)
    plan = plan_target_flops(model, graph, thresholds, 0.6, img_size=320)
    base = model_cost(model, 320).macs
    achieved = model_cost(prune_model(model, graph, plan.keep), 320).macs / base
    assert plan.reached["flops_ratio"] == pytest.approx(achieved) and achieved <= 0.6
    macs = macs_pricer(model, graph, 320)
    position = thresholds.position(plan.percent + 0.5 / thresholds.n)
    assert macs(thresholds.plan(position).keep) / base <= 0.6 < macs(thresholds.plan(position - 1).keep) / base
    with pytest.raises(AscendSlimError, match="cannot be met"):
        plan_target_flops(model, graph, thresholds, 0.01, img_size=320)


def test_target_latency_takes_a_latency_model_and_finds_the_least_pruning() -> None:
    """Any function of the candidate model is a latency model (a FLOPs or Ascend cost model; here the parameter
    count, cheap to evaluate): the plan is the smallest threshold position at or below the target (its
    neighbour below is above it)."""
    model = random_bn_model("yolov5n", seed=6)
    graph = build_graph(model)
    thresholds = Thresholds(graph, get_importance("slim")(model, graph), round_to=8)
    base = sum(p.numel() for p in model.parameters())
    calls: list[int] = []

    def cost_latency(candidate: YOLOv5) -> float:
        calls.append(1)
        return sum(p.numel() for p in candidate.parameters()) / base

    plan = plan_target_latency(model, graph, thresholds, 0.7, cost_latency, resolution=0.0, progress=False)
    position = thresholds.position(plan.percent + 0.5 / thresholds.n)
    below = prune_model(model, graph, thresholds.plan(position - 1).keep, fold_bias=False)
    assert plan.reached["latency_ratio"] <= 0.7 < cost_latency(below)
    assert plan.reached["latency_ratio"] == pytest.approx(
        cost_latency(prune_model(model, graph, plan.keep, fold_bias=False)))
    assert len(plan.reached["measured"]) == len(calls) - 2  # every candidate asked once (+ the two checks above)
    with pytest.raises(AscendSlimError, match="cannot be met"):
        plan_target_latency(model, graph, thresholds, 0.01, cost_latency, progress=False)


def test_measured_latency_model_times_onnx_side_by_side() -> None:
    from ascend_slim.report.latency import OnnxLatencyRatio

    model = random_bn_model("yolov5n", seed=6)
    graph = build_graph(model)
    thresholds = Thresholds(graph, get_importance("slim")(model, graph), round_to=8)
    narrow = prune_model(model, graph, thresholds.plan(thresholds.position(0.75), force=True).keep)
    # no timing is asserted (machine load would decide it): an injected clock in which each run of the original
    # takes 10 ms and each run of the candidate 4 ms, so the ratio shows that both ran side by side, round-robin,
    # and that medians were compared; that the narrow model costs less is a cost-model fact
    ticks = itertools.accumulate(itertools.cycle([0.0, 0.010, 0.0, 0.004]))
    measured = OnnxLatencyRatio(model, img_size=160, runs=5, clock=lambda: next(ticks))
    with pytest.raises(AscendSlimError, match="with"):
        measured(narrow)
    with measured:
        assert measured(narrow) == pytest.approx(0.4)
    assert model_cost(narrow, 160).macs < 0.5 * model_cost(model, 160).macs
    asked: list[int] = []
    result = prune_channels(model, target_latency=0.95, round_to=8, img_size=160, progress=False,
                            latency=lambda m: asked.append(1) or 0.5)  # prune_channels passes its latency model on
    assert result.record["reached"]["latency_ratio"] == 0.5 and len(result.record["reached"]["measured"]) == len(asked)


def test_bad_input_is_refused() -> None:
    fused = YOLOv5.from_yaml("yolov5n").fuse()
    with pytest.raises(AscendSlimError, match="fused"):
        prune_channels(fused, percent=0.3)
    with pytest.raises(AscendSlimError, match="exactly one of"):
        prune_channels(YOLOv5.from_yaml("yolov5n"), percent=0.3, target_flops=0.5)
    with pytest.raises(AscendSlimError, match="not supported by ascend-slim"):
        spec_from_yaml({"nc": 1, "depth_multiple": 1, "width_multiple": 1, "anchors": [[1, 2]],
                        "backbone": [[-1, 1, "GhostConv", [16, 3, 2]]], "head": [[[0], 1, "Detect", [1, "anchors"]]]})
    odd = YOLOv5.from_yaml("yolov5n")
    odd.model[11] = torch.nn.Identity()
    odd.model[11].f, odd.model[11].i = -1, 11
    with pytest.raises(AscendSlimError, match=r"model\.11: module Identity is not supported by channel pruning"):
        build_graph(odd)
