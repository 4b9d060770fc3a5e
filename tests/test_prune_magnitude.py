"""Unstructured magnitude pruning: the requested sparsity, permanent zeros, honest sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ascend_slim.errors import AscendSlimError
from ascend_slim.model import YOLOv5
from ascend_slim.model.checkpoint import load_weights, save_checkpoint
from ascend_slim.prune.magnitude import checkpoint_sizes, conv_sparsity, magnitude_prune


def test_global_scope_zeroes_the_smallest_weights_permanently(tmp_path: Path) -> None:
    model = YOLOv5.from_yaml("yolov5n").eval()
    result = magnitude_prune(model, 0.5, scope="global")
    weights = torch.cat([m.weight.flatten() for m in result.model.modules() if isinstance(m, nn.Conv2d)])
    original = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Conv2d)])
    assert result.record["conv_sparsity"] == pytest.approx(0.5, abs=1e-6)
    zeroed = weights == 0
    assert original[zeroed].abs().max() <= original[~zeroed].abs().min()  # the smallest |w| went, globally
    assert torch.equal(weights[~zeroed], original[~zeroed])
    layers = result.record["layers"]
    assert max(layers.values()) - min(layers.values()) > 0.2  # global ranking: layers differ
    assert conv_sparsity(model)["model.0.conv"] == 0.0  # the input model is untouched
    keys = result.model.state_dict().keys()
    assert not any(k.endswith(("_orig", "_mask")) for k in keys) and keys == model.state_dict().keys()
    path = save_checkpoint(tmp_path / "sparse.pt", result.model)
    reloaded, info = load_weights(path)
    assert conv_sparsity(reloaded) == layers and info["history"][-1]["method"] == "magnitude"


def test_layer_scope_and_sizes() -> None:
    model = YOLOv5.from_yaml("yolov5n").eval()
    result = magnitude_prune(model, 0.3, scope="layer")
    for name, m in result.model.named_modules():
        if isinstance(m, nn.Conv2d):
            assert abs(result.record["layers"][name] - 0.3) <= 1 / m.weight.numel() + 1e-9
    dense, sparse = checkpoint_sizes(model), checkpoint_sizes(result.model)
    assert abs(sparse["raw"] - dense["raw"]) < 0.01 * dense["raw"]  # zeros are still stored
    assert sparse["compressed"] < 0.9 * dense["compressed"]


def test_bad_amount_and_scope() -> None:
    model = YOLOv5.from_yaml("yolov5n")
    for amount in (-0.1, 1.0):
        with pytest.raises(AscendSlimError, match=r"\[0, 1\)"):
            magnitude_prune(model, amount)
    with pytest.raises(AscendSlimError, match="scope"):
        magnitude_prune(model, 0.3, scope="channel")
