"""The channel-correspondence API: for every conv, the kept output and input channels of the original; surgery slices
with exactly these indices; Concat offsets, SPP/SPPF copies, the Focus stem and Detect inputs spelled out by hand."""

from __future__ import annotations

import pytest
import torch
from prune_cases import CUSTOM, random_bn_model

from ascend_slim.prune import build_graph, prune_model
from ascend_slim.prune.correspondence import channel_correspondence


def random_keep(graph, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(group.width, generator=g)[:max(1, group.width // 2 + int(torch.randint(-2, 3, (1,),
                                                                                                  generator=g)))]
            for group in graph.groups]


@pytest.fixture(scope="module")
def yolov5n():
    model = random_bn_model("yolov5n", seed=5, nc=3)
    graph = build_graph(model)
    return model, graph, random_keep(graph, 0)


def test_surgery_slices_with_the_correspondence(yolov5n) -> None:
    model, graph, keep = yolov5n
    corr = channel_correspondence(graph, keep)
    assert list(corr) == list(graph.inputs)  # every conv, in run order
    pruned = prune_model(model, graph, keep, fold_bias=False)
    original, cut = dict(model.named_modules()), dict(pruned.named_modules())
    for name, c in corr.items():
        assert torch.equal(cut[name].weight, original[name].weight[c.out_index][:, c.in_index])
        assert torch.equal(c.slice(original[name].weight), cut[name].weight)
        assert (c.out_index.diff() > 0).all()  # ascending, as the pruned model holds them
        if c.bn is not None:
            assert torch.equal(cut[c.bn].running_var, original[c.bn].running_var[c.out_index])
    assert not corr["model.0.conv"].reads_features and corr["model.0.conv"].writes_pruned
    assert all(c.reads_features and c.reads_pruned for n, c in corr.items() if n != "model.0.conv")


def test_sppf_copies_and_detect_inputs(yolov5n) -> None:
    _, graph, keep = yolov5n
    corr = channel_correspondence(graph, keep)
    hidden = keep[graph.unit_group["model.9.cv1"]].sort().values
    width = graph.units["model.9.cv1"].width
    sppf = corr["model.9.cv2.conv"]
    assert torch.equal(sppf.in_index, torch.cat([hidden + i * width for i in range(4)]))  # x, y1, y2, y3
    assert sppf.in_width == 4 * width and sppf.sources == ("model.9.cv1",)
    for k, layer in enumerate((17, 20, 23)):
        head = corr[f"model.24.m.{k}"]
        assert head.bn is None and not head.writes_pruned and head.out_width == 3 * 8  # na * (5 + nc)
        assert torch.equal(head.in_index, keep[graph.unit_group[f"model.{layer}.cv3"]].sort().values)


def test_concat_offsets_and_residual_sources(yolov5n) -> None:
    _, graph, keep = yolov5n
    corr = channel_correspondence(graph, keep)
    # layer 12 concatenates the upsampled layer 10 (model.10) with layer 6 (C3 model.6's cv3)
    first, second = graph.units["model.10"], graph.units["model.6.cv3"]
    expected = torch.cat([keep[graph.unit_group[first.name]].sort().values,
                          first.width + keep[graph.unit_group[second.name]].sort().values])
    assert torch.equal(corr["model.13.cv1.conv"].in_index, expected)
    # C3 cv3 reads the residual stream (cv1 + every bottleneck's cv2) and then cv2
    assert corr["model.6.cv3.conv"].sources == ("model.6.cv1", "model.6.m.0.cv2", "model.6.m.1.cv2",
                                                "model.6.m.2.cv2", "model.6.cv2")


def test_focus_stem_and_spp_of_the_v5_layout() -> None:
    model = random_bn_model("yolov5s-v5", seed=6, nc=2)
    graph = build_graph(model)
    keep = random_keep(graph, 1)
    corr = channel_correspondence(graph, keep)
    stem = corr["model.0.conv.conv"]  # Focus: the image's 3 channels four times, never pruned
    assert torch.equal(stem.in_index, torch.arange(12)) and not stem.reads_features and not stem.reads_pruned
    assert torch.equal(stem.out_index, keep[graph.unit_group["model.0.conv"]].sort().values)
    hidden = keep[graph.unit_group["model.8.cv1"]].sort().values
    width = graph.units["model.8.cv1"].width
    spp = corr["model.8.cv2.conv"]  # SPP(5, 9, 13): cv1's output and three pooled copies
    assert torch.equal(spp.in_index, torch.cat([hidden + i * width for i in range(4)]))


def test_three_way_concat_of_a_custom_layout() -> None:
    model = random_bn_model(CUSTOM, seed=7)
    graph = build_graph(model)
    keep = random_keep(graph, 2)
    corr = channel_correspondence(graph, keep)
    parts, offset = [], 0
    for unit in ("model.6.cv2", "model.3.cv2", "model.2.cv3"):  # upsampled SPPF, SPP, C3
        parts.append(offset + keep[graph.unit_group[unit]].sort().values)
        offset += graph.units[unit].width
    assert torch.equal(corr["model.9.cv1.conv"].in_index, torch.cat(parts))
    assert corr["model.9.cv1.conv"].in_width == offset
