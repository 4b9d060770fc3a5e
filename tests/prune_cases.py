"""Shared inputs of the pruning tests: real letterboxed photos and YOLOv5 models with non-trivial BatchNorms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ascend_slim import core
from ascend_slim.imageio import read_image
from ascend_slim.model import YOLOv5

VOC_IDS = 4  # VOC test images used beside bus.jpg and zidane.jpg

# A layout no official yaml has: Focus stem, SPP in the middle, a three-way Concat, a two-level Detect.
CUSTOM = {"nc": 3, "depth_multiple": 1.0, "width_multiple": 0.25, "anchors": [[10, 13, 16, 30], [30, 61, 62, 45]],
          "backbone": [[-1, 1, "Focus", [64, 3]], [-1, 1, "Conv", [128, 3, 2]], [-1, 2, "C3", [128]],
                       [-1, 1, "SPP", [128, [3, 5]]], [-1, 1, "Conv", [256, 3, 2]], [-1, 1, "C3", [256]],
                       [-1, 1, "SPPF", [256, 5]]],
          "head": [[-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 3, 2], 1, "Concat", [1]],
                   [-1, 1, "C3", [128, False]], [-1, 1, "Conv", [128, 3, 2]], [[-1, 6], 1, "Concat", [1]],
                   [-1, 2, "C3", [256, True]], [[9, 12], 1, "Detect", ["nc", "anchors"]]]}


def photo_batch(data_dir: Path, size: int) -> torch.Tensor:
    """bus.jpg, zidane.jpg and the first VOC test images, letterboxed to ``size`` square, as one NCHW batch."""
    voc = data_dir / "VOCdevkit" / "VOC2007"
    ids = (voc / "ImageSets" / "Main" / "test.txt").read_text().split()[:VOC_IDS]
    paths = [data_dir / "images" / "bus.jpg", data_dir / "images" / "zidane.jpg",
             *(voc / "JPEGImages" / f"{i}.jpg" for i in ids)]
    tensor, _, _ = core.preprocess([read_image(p) for p in paths], (size, size))
    return torch.from_numpy(np.ascontiguousarray(tensor))


def random_bn_model(cfg: str | dict, seed: int = 0, nc: int | None = None) -> YOLOv5:
    """A model from a yaml (``nc`` classes, default the yaml's) whose BatchNorms look trained: |N(0,1)| gammas,
    small betas, plausible statistics."""
    torch.manual_seed(seed)
    model = YOLOv5.from_yaml(cfg, nc=nc).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.randn(n, generator=g).abs())
                m.bias.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model
