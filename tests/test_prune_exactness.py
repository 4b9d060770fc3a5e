"""The core proof of channel pruning: the physically pruned model (``fold_bias=False``) computes exactly what the
masked original (gamma and beta of removed channels set to 0) computes, on real photos, for the official yolov5n
and yaml-built yolov5s in the v6 (stem conv, SPPF) and v5.0 (Focus, SPP) layouts, at several percents and
round-to values. A wrong index set, a missed coupling or a wrong Concat offset shows up as a large difference.
Bias folding is checked on 1x1 consumers, where it is exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from prune_cases import CUSTOM, photo_batch, random_bn_model

from ascend_slim.model.checkpoint import load_weights
from ascend_slim.prune import build_graph, mask_model, prune_channels, prune_model

IMG = 320
ATOL = 1e-4


@pytest.fixture(scope="module")
def photos(data_dir: Path) -> torch.Tensor:
    return photo_batch(data_dir, IMG)


@pytest.fixture(scope="module")
def models(yolov5n_pt: Path) -> dict:
    official, _ = load_weights(yolov5n_pt)
    return {"yolov5n": official.eval(), "yolov5s": random_bn_model("yolov5s", seed=1),
            "yolov5s-v5": random_bn_model("yolov5s-v5", seed=2), "custom": random_bn_model(CUSTOM, seed=4)}


def heads(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return model(x)


def assert_heads_close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for ha, hb in zip(a, b):
        assert ha.shape == hb.shape
        torch.testing.assert_close(hb, ha, rtol=0, atol=ATOL)


@pytest.mark.parametrize(("name", "percent", "round_to"), [
    ("yolov5n", 0.1, 1), ("yolov5n", 0.7, 16), ("yolov5s", 0.4, 8), ("yolov5s-v5", 0.2, 16), ("yolov5s-v5", 0.7, 1),
])
def test_pruned_equals_masked(models: dict, photos: torch.Tensor, name: str, percent: float, round_to: int) -> None:
    model = models[name]
    result = prune_channels(model, percent=percent, round_to=round_to, fold_bias=False, img_size=IMG, force=True)
    pruned = result.model.eval()
    assert result.record["params"][1] < result.record["params"][0]
    graph = build_graph(model)
    keep = result.plan.keep
    if round_to > 1:
        assert all(k.numel() % round_to == 0 or k.numel() == g.width for k, g in zip(keep, graph.groups))
    assert_heads_close(heads(mask_model(model, graph, keep), photos), heads(pruned, photos))


def test_random_index_sets_with_single_channels(photos: torch.Tensor) -> None:
    """Arbitrary kept sets, many of one channel, so no dimension may collapse and every offset must be right."""
    model = random_bn_model("yolov5n", seed=3)
    graph = build_graph(model)
    g = torch.Generator().manual_seed(0)
    keep = []
    for group in graph.groups:
        n = 1 if torch.rand(1, generator=g) < 0.5 else int(torch.randint(1, group.width + 1, (1,), generator=g))
        keep.append(torch.randperm(group.width, generator=g)[:n])
    assert sum(k.numel() == 1 for k in keep) >= 10
    pruned = prune_model(model, graph, keep, fold_bias=False).eval()
    x = photos[:, :, :160, :160].contiguous()
    assert_heads_close(heads(mask_model(model, graph, keep), x), heads(pruned, x))


def test_any_yaml_from_supported_modules(models: dict, photos: torch.Tensor) -> None:
    """The layout of CUSTOM, built from the supported modules."""
    model = models["custom"]
    graph = build_graph(model)
    assert len(graph.inputs["model.9.cv1.conv"]) == 3  # upsampled SPPF output, SPP output, C3 output
    result = prune_channels(model, percent=0.5, round_to=8, fold_bias=False, img_size=160)
    x = photos[:, :, :160, :160].contiguous()
    assert_heads_close(heads(mask_model(model, graph, result.plan.keep), x), heads(result.model.eval(), x))


def one_by_one_consumed(model: torch.nn.Module) -> tuple[object, list[torch.Tensor]]:
    """Prune half of every group whose consumers are all 1x1 convs; keep every other group whole."""
    graph = build_graph(model)
    modules = dict(model.named_modules())
    keep = []
    for group in graph.groups:
        consumers = graph.consumers(group.index)
        only_1x1 = all(modules[c].kernel_size == (1, 1) for c in consumers)
        keep.append(torch.arange(0, group.width, 2) if only_1x1 else torch.arange(group.width))
    return graph, keep


@pytest.mark.parametrize("name", ["yolov5n", "custom"])
def test_bias_folding_is_exact_for_1x1_consumers(models: dict, photos: torch.Tensor, name: str) -> None:
    """Removed channels with gamma 0 but their beta kept output the constant SiLU(beta); folding it into the
    consumers (BN running mean, Detect bias), through residual sums, Concat offsets, SPP(F) copies and Upsample,
    reproduces the masked model exactly when those consumers are 1x1."""
    model = models[name]
    graph, keep = one_by_one_consumed(model)
    pruned_groups = [g for g, k in zip(graph.groups, keep) if k.numel() < g.width]
    assert any(len(g.units) > 1 for g in pruned_groups)  # a residual stream is among them
    assert len(pruned_groups) >= 8
    x = photos[:3]
    reference = heads(mask_model(model, graph, keep, zero_beta=False), x)
    assert_heads_close(reference, heads(prune_model(model, graph, keep, fold_bias=True).eval(), x))
    unfolded = heads(prune_model(model, graph, keep, fold_bias=False).eval(), x)
    assert max(float((a - b).abs().max()) for a, b in zip(reference, unfolded)) > 1e-2  # folding mattered
