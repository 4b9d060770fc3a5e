"""Parameters and FLOPs of a YOLOv5 model per layer at an image size, counted from its module tree.

FLOPs follow YOLOv5's convention: GFLOPs = 2 x multiply-accumulates of the convolutions (thop on the fused
model, Ultralytics ``model_info``), where each conv output element costs ``c_in / groups * kh * kw`` MACs
plus one for its bias or BatchNorm (the bias after fusion), so a model and its fused copy count the same.
Output sizes come from one forward at the largest stride (every feature map is then a whole number of
cells) scaled to the image size, as ``model_info`` does; image sides must be multiples of that stride.
Pruning keeps every map's size, so :func:`conv_output_sizes` of the original prices any pruned variant.
Parameters are the module's own (a fused model has fewer: BN folded into conv biases).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import AscendSlimError
from .yolo import YOLOv5


@dataclass(frozen=True)
class LayerCost:
    """One entry of ``model.model``: its index, module type, parameters and MACs at the image size."""

    index: int
    type: str
    params: int
    macs: int

    @property
    def gflops(self) -> float:
        return 2 * self.macs / 1e9


@dataclass(frozen=True)
class ModelCost:
    layers: list[LayerCost]
    img_size: tuple[int, int]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def gflops(self) -> float:
        return 2 * self.macs / 1e9

    def to_dict(self) -> dict:
        return {"img_size": list(self.img_size), "params": self.params, "gflops": self.gflops,
                "layers": [{"index": c.index, "type": c.type, "params": c.params, "gflops": c.gflops}
                           for c in self.layers]}


def _side(img_size: int | tuple[int, int]) -> tuple[int, int]:
    return (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))


def conv_output_sizes(model: YOLOv5, img_size: int | tuple[int, int] = 640) -> dict[str, tuple[int, int]]:
    """Output height and width of every Conv2d of ``model`` (by qualified name) at ``img_size`` (int or (h, w),
    multiples of the largest stride)."""
    h, w = _side(img_size)
    stride = int(max(model.strides))
    if h <= 0 or w <= 0 or h % stride or w % stride:
        raise AscendSlimError(f"image size {h}x{w} must be positive multiples of the model stride {stride}")
    sizes: dict[str, tuple[int, int]] = {}

    def recorder(name: str):
        def record(_conv: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
            sizes[name] = (output.shape[2] * h // stride, output.shape[3] * w // stride)
        return record

    hooks = [m.register_forward_hook(recorder(name)) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    training = model.training
    try:  # eval mode: BatchNorm statistics must not move
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, stride, stride, device=next(model.parameters()).device))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return sizes


def conv_macs(conv: nn.Conv2d, size: tuple[int, int], c_in: int | None = None, c_out: int | None = None) -> int:
    """MACs of ``conv`` producing a ``size`` (h, w) map, optionally with other channel counts: each output
    element costs ``c_in / groups * kh * kw`` plus one for the bias (or the BatchNorm that fuses into one)."""
    c_in = conv.in_channels if c_in is None else c_in
    c_out = conv.out_channels if c_out is None else c_out
    return size[0] * size[1] * c_out * (c_in // conv.groups * conv.kernel_size[0] * conv.kernel_size[1] + 1)


def model_cost(model: YOLOv5, img_size: int | tuple[int, int] = 640) -> ModelCost:
    """Per-layer parameters and MACs of ``model`` at ``img_size`` (int or (h, w), multiples of the max stride)."""
    sizes = conv_output_sizes(model, img_size)
    layers = []
    for i, layer in enumerate(model.model):
        macs = sum(conv_macs(m, sizes[f"model.{i}.{name}"]) for name, m in layer.named_modules()
                   if isinstance(m, nn.Conv2d))
        params = sum(p.numel() for p in layer.parameters())
        layers.append(LayerCost(i, type(layer).__name__, params, macs))
    return ModelCost(layers, _side(img_size))
