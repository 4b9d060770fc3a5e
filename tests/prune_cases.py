"""Shared inputs of the pruning tests: real letterboxed photos and YOLOv5 models with non-trivial BatchNorms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ascend_slim import core
from ascend_slim.imageio import read_image
from ascend_slim.model import YOLOv5

VOC_IDS = 4  # VOC test images used beside bus.jpg and zidane.jpg


def photo_batch(data_dir: Path, size: int) -> torch.Tensor:
    """bus.jpg, zidane.jpg and the first VOC test images, letterboxed to ``size`` square, as one NCHW batch."""
    voc = data_dir / "VOCdevkit" / "VOC2007"
    ids = (voc / "ImageSets" / "Main" / "test.txt").read_text().split()[:VOC_IDS]
    paths = [data_dir / "images" / "bus.jpg", data_dir / "images" / "zidane.jpg",
             *(voc / "JPEGImages" / f"{i}.jpg" for i in ids)]
    tensor, _, _ = core.preprocess([read_image(p) for p in paths], (size, size))
    return torch.from_numpy(np.ascontiguousarray(tensor))


def random_bn_model(cfg: str | dict, seed: int = 0) -> YOLOv5:
    """A model from a yaml whose BatchNorms look trained: |N(0,1)| gammas, small betas, plausible statistics."""
    torch.manual_seed(seed)
    model = YOLOv5.from_yaml(cfg).eval()
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
