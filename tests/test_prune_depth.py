"""Depth: dropping residual bottlenecks is exact where the block adds nothing, keeps every other weight, maps names
back to the original, and reconstruction (alone or after a channel cut of the shallower model) recovers a dropped
block on real photos; blocks are scored by recoverability per cost saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from prune_cases import CUSTOM, random_bn_model
from test_prune_reconstruct import IMG, head_error, voc_split

from ascend_slim import core
from ascend_slim.errors import AscendSlimError
from ascend_slim.imageio import read_image
from ascend_slim.prune import build_graph, get_importance, prune_model
from ascend_slim.prune.depth import (
    depth_correspondence,
    drop_blocks,
    macs_cost,
    original_name,
    residual_blocks,
    score_blocks,
)
from ascend_slim.prune.reconstruct import reconstruct
from ascend_slim.prune.uniform import plan_uniform

YOLOV5N_BLOCKS = ["model.2.m.0", "model.4.m.0", "model.4.m.1", "model.6.m.0", "model.6.m.1", "model.6.m.2",
                  "model.8.m.0"]


@pytest.fixture(scope="module")
def photos(voc_root: Path) -> tuple[list[Path], torch.Tensor]:
    tensor, _, _ = core.preprocess([read_image(p) for p in voc_split(voc_root, "val", 4)], (IMG, IMG))
    return voc_split(voc_root, "train", 8), torch.from_numpy(np.ascontiguousarray(tensor))


def test_residual_blocks_and_names() -> None:
    model = random_bn_model("yolov5n", nc=3)
    assert residual_blocks(model) == YOLOV5N_BLOCKS  # the head's C3s have no shortcut
    assert residual_blocks(random_bn_model(CUSTOM, nc=3)) == ["model.2.m.0", "model.2.m.1", "model.5.m.0",
                                                              "model.12.m.0", "model.12.m.1"]
    blocks = ["model.4.m.0", "model.6.m.1"]
    assert original_name("model.6.m.1.cv2.bn", blocks) == "model.6.m.2.cv2.bn"
    assert original_name("model.6.m.0.cv1.conv", blocks) == "model.6.m.0.cv1.conv"
    assert original_name("model.4.m.0.cv1.conv", blocks) == "model.4.m.1.cv1.conv"
    assert original_name("model.4.cv3.conv", blocks) == "model.4.cv3.conv"
    assert original_name("model.24.m.0", blocks) == "model.24.m.0"  # Detect's convs are no bottlenecks
    shallow = drop_blocks(model, blocks)
    assert residual_blocks(shallow) == ["model.2.m.0", "model.4.m.0", "model.6.m.0", "model.6.m.1", "model.8.m.0"]
    state = model.state_dict()
    for key, value in shallow.state_dict().items():
        assert torch.equal(value, state[original_name(key, blocks)])
    lost = sum(p.numel() for b in blocks for p in model.get_submodule(b).parameters())
    assert sum(p.numel() for p in shallow.parameters()) == sum(p.numel() for p in model.parameters()) - lost
    assert [len(layer["m"]) for layer in shallow.spec["layers"] if layer["type"] == "C3"][:4] == [1, 1, 2, 1]


@pytest.mark.parametrize("cfg", ["yolov5n", CUSTOM])
def test_exact_when_the_block_adds_nothing(cfg) -> None:
    """A bottleneck whose last BatchNorm has gamma = beta = 0 adds SiLU(0) = 0: dropping it changes nothing."""
    model = random_bn_model(cfg, seed=3, nc=3)
    blocks = residual_blocks(model)[1::2]
    with torch.no_grad():
        for b in blocks:
            bn = model.get_submodule(b).cv2.bn
            bn.weight.zero_(), bn.bias.zero_()
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b in zip(model(x), drop_blocks(model, blocks)(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert head_error(model, drop_blocks(model, residual_blocks(model)[:1]), x) > 1e-3  # one that adds is seen (5e-3)


def test_bad_blocks() -> None:
    model = random_bn_model("yolov5n", nc=3)
    with pytest.raises(AscendSlimError, match=r"model\.13\.m\.0"):  # no shortcut: not an identity path
        drop_blocks(model, ["model.13.m.0"])
    with pytest.raises(AscendSlimError, match="twice"):
        drop_blocks(model, ["model.4.m.0", "model.4.m.0"])
    with pytest.raises(AscendSlimError, match=r"cannot drop model\.4\.cv1: the residual bottlenecks of this model "
                                              r"are model\.2\.m\.0"):
        drop_blocks(model, ["model.4.cv1"])


@pytest.mark.parametrize("fraction", [0.0, 0.3])
def test_reconstruction_recovers_dropped_blocks(fraction: float, photos) -> None:
    """Drop two blocks (then, at 0.3, cut channels of the shallower model too) and re-fit every conv against the
    original through the renamed correspondence: the held-out head error falls."""
    fit, held_out = photos
    original = random_bn_model("yolov5n", seed=21, nc=3)
    blocks = ["model.4.m.1", "model.6.m.0"]
    shallow = drop_blocks(original, blocks).eval()
    graph = build_graph(shallow)
    keep = plan_uniform(graph, get_importance("slim")(shallow, graph), fraction).keep
    model = prune_model(shallow, graph, keep).eval()
    correspondence = depth_correspondence(shallow, blocks, keep)
    assert correspondence["model.6.m.1.cv1.conv"].source_conv == "model.6.m.2.cv1.conv"
    assert correspondence["model.6.m.1.cv1.conv"].source_bn == "model.6.m.2.cv1.bn"
    before = head_error(original, model, held_out)
    report = reconstruct(original, model, correspondence, fit, samples_per_image=256, img_size=IMG, progress=False)
    after = head_error(original, model, held_out)
    assert before > 0.1 and after < 0.3 * before, (before, after)  # measured 0.18 -> 0.002 without a channel cut
    assert {f.conv for f in report.layers} == {n for n, c in correspondence.items() if c.reads_features}


def test_score_blocks_ranks_by_error_per_cost_saved(photos) -> None:
    fit, _ = photos
    original = random_bn_model("yolov5n", seed=22, nc=3)
    scores = score_blocks(original, fit[:4], img_size=IMG, samples_per_image=64)
    assert sorted(s.block for s in scores) == sorted(YOLOV5N_BLOCKS)
    assert [s.score for s in scores] == sorted(s.score for s in scores)
    cost = macs_cost(IMG)
    for s in scores:
        assert s.error > 0
        assert s.saved == pytest.approx(1 - cost(drop_blocks(original, [s.block])) / cost(original))
    with pytest.raises(AscendSlimError, match="at least one image"):
        score_blocks(original, [], img_size=IMG)
