"""YOLOv5 building blocks with Ultralytics semantics, every channel count given explicitly.

Attribute names (``conv``, ``bn``, ``cv1``, ``m`` ...) follow Ultralytics ``models/common.py`` so that state-dict
keys of official checkpoints map 1:1. Unlike Ultralytics, composite blocks take the width of every inner conv
(not a width ratio), so a channel-pruned block is the same class with other numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def autopad(k: int, p: int | None = None) -> int:
    """'Same' padding for an odd kernel (Ultralytics ``autopad``)."""
    return k // 2 if p is None else p


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + SiLU; after :meth:`fuse` the conv carries the BN and ``bn`` is None."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p), bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.act(x if self.bn is None else self.bn(x))

    def fuse(self) -> None:
        """Fold the BatchNorm into the conv weights and bias (inference only)."""
        if self.bn is not None:
            self.conv = fuse_conv_bn_eval(self.conv.eval(), self.bn.eval())
            self.bn = None


class Bottleneck(nn.Module):
    """1x1 Conv (``hidden`` channels) then 3x3 Conv (``c2``); residual when ``shortcut`` and ``c1 == c2``."""

    def __init__(self, c1: int, hidden: int, c2: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden, c2, 3, 1)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with 3 convs: ``cv3(cat(m(cv1(x)), cv2(x)))``.

    ``bottlenecks`` lists ``(hidden, out)`` widths of each Bottleneck in ``m``; the first takes ``c_cv1`` channels.
    """

    def __init__(self, c1: int, c_cv1: int, c_cv2: int, c_cv3: int,
                 bottlenecks: Sequence[tuple[int, int]], shortcut: bool = True) -> None:
        super().__init__()
        self.cv1 = Conv(c1, c_cv1, 1, 1)
        self.cv2 = Conv(c1, c_cv2, 1, 1)
        blocks, c = [], c_cv1
        for hidden, out in bottlenecks:
            blocks.append(Bottleneck(c, hidden, out, shortcut))
            c = out
        self.m = nn.Sequential(*blocks)
        self.cv3 = Conv(c + c_cv2, c_cv3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPP(nn.Module):
    """Spatial pyramid pooling (YOLOv5 v5.0): parallel max-pools of sizes ``k`` on ``cv1``'s output."""

    def __init__(self, c1: int, c_cv1: int, c2: int, k: Sequence[int] = (5, 9, 13)) -> None:
        super().__init__()
        self.cv1 = Conv(c1, c_cv1, 1, 1)
        self.cv2 = Conv(c_cv1 * (len(k) + 1), c2, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


class SPPF(nn.Module):
    """Fast SPP (YOLOv5 v6+): one max-pool of size ``k`` applied three times in a chain."""

    def __init__(self, c1: int, c_cv1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        self.cv1 = Conv(c1, c_cv1, 1, 1)
        self.cv2 = Conv(c_cv1 * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Focus(nn.Module):
    """Space-to-depth (4 pixel phases stacked on channels) then a Conv (YOLOv5 v5.0 stem)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None) -> None:
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, s, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1))

    def as_conv(self) -> Conv:
        """The same function as one Conv with a (2k)x(2k) kernel, stride 2s and padding 2p (no strided slicing).

        Phase (dy, dx) of Focus channel group g and kernel tap (i, j) reads input pixel
        ``2*(row + i - p) + dy``, i.e. tap ``(2i + dy, 2j + dx)`` of a stride-2 kernel with padding ``2p``.
        """
        inner = self.conv.conv
        k, s, p = inner.kernel_size[0], inner.stride[0], inner.padding[0]
        c2, c4 = inner.out_channels, inner.in_channels
        c1 = c4 // 4
        out = Conv(c1, c2, 2 * k, 2 * s, 2 * p)
        w = inner.weight.detach().view(c2, 4, c1, k, k)
        big = torch.zeros(c2, c1, 2 * k, 2 * k, dtype=w.dtype)
        for g, (dy, dx) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
            big[:, :, dy::2, dx::2] = w[:, g]
        if self.conv.bn is None:  # already fused: carry the bias, drop the BN
            out.fuse()
            out.conv.bias.data.copy_(inner.bias.detach())
        else:
            out.bn.load_state_dict(self.conv.bn.state_dict())
        out.conv.weight.data.copy_(big)
        return out.to(inner.weight.device).train(self.training)


class Concat(nn.Module):
    """Concatenate a list of tensors along ``dimension``."""

    def __init__(self, dimension: int = 1) -> None:
        super().__init__()
        self.d = dimension

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.d)
