"""Parameters and FLOPs from the module tree, against the Ultralytics README figures (GFLOPs = 2 x MACs at 640)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ascend_slim.errors import AscendSlimError
from ascend_slim.model import YOLOv5
from ascend_slim.model.checkpoint import load_weights
from ascend_slim.model.cost import model_cost

# Ultralytics README: GFLOPs at 640 (v6.0+ for n/s/x, v5.0 for the Focus/SPP yolov5s)
README_GFLOPS = {"yolov5n": 4.5, "yolov5s": 16.5, "yolov5x": 205.7, "yolov5s-v5": 17.0}


@pytest.mark.parametrize("name", list(README_GFLOPS))
def test_gflops_match_ultralytics(name: str) -> None:
    model = YOLOv5.from_yaml(name)  # training mode: counting must not move the BatchNorm statistics
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cost = model_cost(model, 640)
    assert round(cost.gflops, 1) == README_GFLOPS[name]
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert [c.index for c in cost.layers] == list(range(len(model.model)))
    if name != "yolov5x":  # fusing the largest model only costs test time
        fused = model_cost(model.fuse(), 640)
        assert fused.macs == cost.macs  # a BatchNorm costs what the bias it fuses into costs
        assert fused.params < cost.params


def test_official_checkpoint_and_image_sizes(yolov5n_pt: Path) -> None:
    model, _ = load_weights(yolov5n_pt)
    full = model_cost(model, 640)
    assert round(full.gflops, 1) == 4.5 and full.params == 1_872_157
    assert model_cost(model, (320, 640)).macs * 2 == full.macs
    assert model_cost(model, 320).macs * 4 == full.macs
    detect = full.layers[-1]
    assert detect.type == "Detect" and detect.macs == sum(
        (640 // s) ** 2 * 255 * (c + 1) for s, c in zip((8, 16, 32), (64, 128, 256)))
    with pytest.raises(AscendSlimError, match="multiples of the model stride 32"):
        model_cost(model, 300)
