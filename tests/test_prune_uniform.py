"""The uniform per-layer planner: the same fraction cut from every group, the lowest-scored channels inside each,
widths rounded to the nearest multiple; the least fraction meeting a cost target (here conv MACs); the
data-driven consumer-output importance."""

from __future__ import annotations

import pytest
import torch
from prune_cases import random_bn_model

from ascend_slim.errors import AscendSlimError
from ascend_slim.model import YOLOv5
from ascend_slim.prune import build_graph, get_importance
from ascend_slim.prune.importance import ConsumerOutputImportance
from ascend_slim.prune.planner import macs_pricer
from ascend_slim.prune.uniform import plan_removed, plan_uniform, plan_uniform_target, uniform_count


@pytest.fixture(scope="module")
def model_graph_scores():
    model = random_bn_model("yolov5n", seed=21, nc=3)
    graph = build_graph(model)
    return model, graph, get_importance("slim")(model, graph)


def test_uniform_count_rounding() -> None:
    assert uniform_count(64, 0.1) == 58  # round(6.4) = 6 removed
    assert uniform_count(256, 0.1, round_to=16) == 224  # 230 kept -> nearest multiple of 16
    assert uniform_count(128, 0.1, round_to=16) == 112  # 115 -> 112
    assert uniform_count(16, 0.1, round_to=16) == 16  # 14 -> 16: a narrow group is not cut
    assert uniform_count(16, 0.9, round_to=16) == 16  # never below one multiple
    assert uniform_count(10, 0.95) == 1 and uniform_count(10, 0.95, min_keep=0.25) == 3


def test_same_fraction_of_every_group_lowest_scores_go(model_graph_scores) -> None:
    _, graph, scores = model_graph_scores
    plan = plan_uniform(graph, scores, 0.25)
    for group, score, kept in zip(graph.groups, scores, plan.keep):
        assert kept.numel() == group.width - round(0.25 * group.width)
        removed = torch.ones(group.width, dtype=torch.bool)
        removed[kept] = False
        assert float(score[kept].min()) >= float(score[removed].max())  # importance ranking inside the group
        assert (kept.diff() > 0).all()
    total = sum(g.width for g in graph.groups)
    assert plan.percent == pytest.approx(1 - sum(k.numel() for k in plan.keep) / total)
    assert 0.24 < plan.percent < 0.26 and plan.reached == {"uniform_fraction": 0.25}
    assert plan.threshold == pytest.approx(min(float(s[k].min()) for s, k in zip(scores, plan.keep)))
    assert all(k.numel() == g.width for k, g in zip(plan_uniform(graph, scores, 0.0).keep, graph.groups))


def test_least_fraction_meeting_a_macs_target(model_graph_scores) -> None:
    model, graph, scores = model_graph_scores
    macs = macs_pricer(model, graph, 128)
    plan = plan_uniform_target(graph, scores, macs, 0.7, round_to=8, resolution=0.002)
    base = macs([torch.arange(g.width) for g in graph.groups])
    fraction = plan.reached["uniform_fraction"]
    assert plan.reached["ratio"] == pytest.approx(macs(plan.keep) / base) and plan.reached["ratio"] <= 0.7
    assert macs(plan_uniform(graph, scores, fraction - 0.002, round_to=8).keep) / base > 0.7  # the least
    assert all(k.numel() % 8 == 0 or k.numel() == g.width for k, g in zip(plan.keep, graph.groups))


def test_bad_requests(model_graph_scores) -> None:
    model, graph, scores = model_graph_scores
    with pytest.raises(AscendSlimError, match="fraction"):
        plan_uniform(graph, scores, 1.0)
    with pytest.raises(AscendSlimError, match="round-to"):
        plan_uniform(graph, scores, 0.1, round_to=1024)
    with pytest.raises(AscendSlimError, match="cannot be met"):
        plan_uniform_target(graph, scores, macs_pricer(model, graph, 128), 0.001)


def test_consumer_output_importance_is_the_readers_output_change(voc_root) -> None:
    """For a group read only by one 1x1 conv (a C3's cv2, read by its cv3), the score of channel c is exactly the
    mean squared change of cv3's BatchNorm output when c is zeroed; a channel no reader weighs scores 0."""
    model = random_bn_model("yolov5n", seed=22, nc=3)
    voc = voc_root / "VOC2007"
    ids = (voc / "ImageSets" / "Main" / "train.txt").read_text().split()[:3]
    images = [voc / "JPEGImages" / f"{i}.jpg" for i in ids]
    graph = build_graph(model)
    group = graph.unit_group["model.4.cv2"]
    assert graph.consumers(group) == ["model.4.cv3.conv"]
    reader, bn = model.model[4].cv3.conv, model.model[4].cv3.bn
    offset = graph.inputs["model.4.cv3.conv"][0].width  # cv3 reads cat(m(cv1(x)), cv2(x))
    with torch.no_grad():
        reader.weight[:, offset + 5] = 0
    captured = []
    handle = reader.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    scores = ConsumerOutputImportance(images, img_size=64, batch_size=2)(model, graph)
    handle.remove()
    x = torch.cat(captured)
    scale = (bn.weight / (bn.running_var + bn.eps).sqrt()).view(1, -1, 1, 1)
    for c in (0, 3, 5):
        only = torch.zeros_like(x)
        only[:, offset + c] = x[:, offset + c]
        with torch.no_grad():
            change = (scale * reader(only)).pow(2).sum(1).mean()
        assert float(scores[group][c]) == pytest.approx(float(change), rel=1e-4, abs=1e-9)
    assert float(scores[group][5]) == 0.0 and float(scores[group][3]) > 0
    assert 5 not in plan_uniform(graph, scores, 0.1).keep[group]
    with pytest.raises(AscendSlimError, match="at least one image"):
        ConsumerOutputImportance([])


def test_cut_levels_survive_rounding() -> None:
    """On yolov5n with widths rounded to 16, a plain 2 % uniform cut removes nothing (every group rounds back to
    full width); the level defined on removed channels removes at least 2 %, and the least uniform fraction that
    does (a smaller one removes less)."""
    model = YOLOv5.from_yaml("yolov5n", nc=20)
    graph = build_graph(model)
    scores = get_importance("slim")(model, graph)
    assert plan_uniform(graph, scores, 0.02, round_to=16).percent == 0.0
    for level in (0.02, 0.1, 0.2):
        plan = plan_removed(graph, scores, level, round_to=16)
        assert plan.percent >= level and plan.reached["removed"] == plan.percent
        assert all(k.numel() % 16 == 0 or k.numel() == g.width for k, g in zip(plan.keep, graph.groups))
        smaller = plan_uniform(graph, scores, plan.reached["uniform_fraction"] - 0.004, round_to=16)
        assert smaller.percent < level
    assert plan_removed(graph, scores, 0.1).percent == pytest.approx(0.1, abs=0.01)  # no rounding: as asked
    assert plan_removed(graph, scores, 0.0, round_to=16).percent == 0.0
    with pytest.raises(AscendSlimError, match="cut level"):
        plan_removed(graph, scores, 1.0)
