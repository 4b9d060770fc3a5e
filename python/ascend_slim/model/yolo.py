"""The YOLOv5 detector (Ultralytics layout and state-dict keys), built from an explicit architecture spec."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AscendSlimError
from ..meta import ModelMeta, as_hw
from .common import C3, SPP, SPPF, Concat, Conv, Focus
from .spec import spec_from_yaml

Grids = list[tuple[torch.Tensor, torch.Tensor]]


class Detect(nn.Module):
    """One 1x1 conv per level producing ``na * (5 + nc)`` logits; ``anchors`` buffer in grid units (Ultralytics)."""

    def __init__(self, nc: int, anchors_px: Sequence, ch: Sequence[int], strides: Sequence[float]) -> None:
        super().__init__()
        anchors = torch.tensor(anchors_px, dtype=torch.float32)
        self.nc, self.no = nc, nc + 5
        self.nl, self.na = anchors.shape[0], anchors.shape[1]
        self.strides = [float(s) for s in strides]
        self.register_buffer("anchors", anchors / torch.tensor(self.strides).view(-1, 1, 1))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def initialize_biases(self) -> None:
        """Ultralytics prior: objectness for ~8 objects per 640 image, class scores for 0.6/nc."""
        for conv, s in zip(self.m, self.strides):
            b = conv.bias.view(self.na, -1)
            b.data[:, 4] += math.log(8 / (640 / s) ** 2)
            b.data[:, 5:] += math.log(0.6 / (self.nc - 0.99999))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        heads = []
        for conv, x in zip(self.m, xs):
            y = conv(x)
            bs, _, ny, nx = y.shape
            heads.append(y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return heads

    def make_grids(self, shapes: Sequence[tuple[int, int]]) -> Grids:
        """Per level: cell offsets minus 0.5 ``[1, 1, ny, nx, 2]`` and anchors in pixels ``[1, na, 1, 1, 2]``."""
        grids = []
        for i, (ny, nx) in enumerate(shapes):
            yv, xv = torch.meshgrid(torch.arange(ny, dtype=torch.float32), torch.arange(nx, dtype=torch.float32),
                                    indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2) - 0.5
            anchor_grid = (self.anchors[i].detach().float().cpu() * self.strides[i]).view(1, self.na, 1, 1, 2)
            grids.append((grid.to(self.anchors.device), anchor_grid.to(self.anchors.device)))
        return grids

    def decode(self, heads: Sequence[torch.Tensor], grids: Grids | None = None) -> torch.Tensor:
        """Raw heads -> ``[N, K, 5 + nc]``: xywh in input pixels, sigmoid objectness and class scores.

        Uses split/cat instead of in-place slice assignment, so an ONNX export has no ScatterND.
        """
        if grids is None:
            grids = self.make_grids([(int(h.shape[2]), int(h.shape[3])) for h in heads])
        out = []
        for h, (grid, anchor_grid), s in zip(heads, grids, self.strides):
            xy, wh, conf = h.sigmoid().split((2, 2, self.no - 4), 4)
            xy = (xy * 2 + grid) * s
            wh = (wh * 2) ** 2 * anchor_grid
            k = anchor_grid.shape[1] * grid.shape[2] * grid.shape[3]  # plain ints even when tracing: static reshape
            out.append(torch.cat((xy, wh, conf), 4).reshape(-1, k, self.no))
        return torch.cat(out, 1)


def _positive(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


def _build_layer(layer: dict, c1: int, cin: list[int], stride_in: list[float]) -> tuple[nn.Module, int, float]:
    """One module from its spec, with its output channels and output stride."""
    t = layer["type"]
    if t in ("Conv", "Focus"):
        c2, k, s = (_positive(layer[key], key) for key in ("c2", "k", "s"))
        cls = Conv if t == "Conv" else Focus
        return cls(c1, c2, k, s, layer.get("p")), c2, stride_in[0] * s * (2 if t == "Focus" else 1)
    if t == "C3":
        widths = [(_positive(b["cv1"], "m.cv1"), _positive(b["cv2"], "m.cv2")) for b in layer["m"]]
        c2 = _positive(layer["cv3"], "cv3")
        module = C3(c1, _positive(layer["cv1"], "cv1"), _positive(layer["cv2"], "cv2"), c2, widths,
                    bool(layer.get("shortcut", True)))
        return module, c2, stride_in[0]
    if t in ("SPPF", "SPP"):
        c2 = _positive(layer["cv2"], "cv2")
        k = layer["k"]
        module = (SPPF if t == "SPPF" else SPP)(c1, _positive(layer["cv1"], "cv1"), c2,
                                                _positive(k, "k") if t == "SPPF" else tuple(k))
        return module, c2, stride_in[0]
    if t == "Upsample":
        return nn.Upsample(scale_factor=layer["scale"], mode=layer["mode"]), c1, stride_in[0] / layer["scale"]
    if t == "Concat":
        if len(set(stride_in)) != 1:
            raise ValueError(f"concatenates tensors of different strides {stride_in}")
        return Concat(layer.get("dim", 1)), sum(cin), stride_in[0]
    raise ValueError(f"unknown layer type {t!r}")


class YOLOv5(nn.Module):
    """YOLOv5 detector built from an explicit spec (see :mod:`ascend_slim.model.spec`).

    ``forward`` returns the raw heads, one ``[N, na, ny, nx, 5 + nc]`` logit tensor per stride, in training and
    evaluation mode alike; :meth:`decode` turns them into boxes. ``history`` records what was done to the model.
    """

    def __init__(self, spec: dict, history: Sequence[dict] = ()) -> None:
        super().__init__()
        try:
            layer_specs = copy.deepcopy(list(spec["layers"]))
            nc = _positive(int(spec["nc"]), "nc")
            names = [str(n) for n in spec["names"]]
            anchors = spec["anchors"]
        except (KeyError, TypeError, ValueError) as exc:
            raise AscendSlimError(f"model spec is malformed ({exc!r}); rebuild it with YOLOv5.from_yaml") from None
        if len(names) != nc:
            raise AscendSlimError(f"model spec has {len(names)} class names for nc={nc}")
        layers, save, chans, strides = [], set(), [], []
        for i, layer in enumerate(layer_specs):
            try:
                f = layer["from"]
                srcs = [f] if isinstance(f, int) else list(f)
                idx = [x if x >= 0 else i + x for x in srcs]
                if any(not -1 <= j < i for j in idx) or (i > 0 and -1 in idx) or (i == 0 and idx != [-1]):
                    raise ValueError(f"'from' {f!r} does not name earlier layers")
                cin = [3 if j < 0 else chans[j] for j in idx]
                stride_in = [1.0 if j < 0 else strides[j] for j in idx]
                if layer["type"] == "Detect":
                    if i != len(layer_specs) - 1:
                        raise ValueError("Detect must be the last layer")
                    det_strides = stride_in
                    module = Detect(nc, anchors, cin, det_strides)
                    if module.anchors.shape[0] != len(cin) or module.anchors.shape[2] != 2:
                        raise ValueError(f"anchors shape {tuple(module.anchors.shape)} does not fit {len(cin)} levels")
                    c2, s = 0, 0.0
                else:
                    module, c2, s = _build_layer(layer, cin[0], cin, stride_in)
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise AscendSlimError(f"model spec layer {i} ({layer.get('type', '?')}): {exc}") from None
            module.f, module.i = f, i
            save.update(j for j, x in zip(idx, srcs) if x != -1)
            layers.append(module)
            chans.append(c2)
            strides.append(s)
        if not layers or not isinstance(layers[-1], Detect):
            raise AscendSlimError("model spec has no Detect layer at the end")
        if "strides" in spec and [float(s) for s in spec["strides"]] != det_strides:
            raise AscendSlimError(f"model spec strides {spec['strides']} differ from the layers' {det_strides}")
        self.model = nn.ModuleList(layers)
        self.save = sorted(save)
        self.names = names
        self.fused = False
        self.history: list[dict] = copy.deepcopy(list(history))
        self._layer_specs = layer_specs
        self.detect.initialize_biases()

    # -- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, cfg: str | Path | dict, nc: int | None = None, names: list[str] | None = None) -> YOLOv5:
        """Build from an Ultralytics yaml (shipped name like ``"yolov5s"``, a path, or a dict); ``nc``/``names``
        override its classes."""
        return cls(spec_from_yaml(cfg, nc=nc, names=names))

    @classmethod
    def from_spec(cls, spec: dict, history: Sequence[dict] = ()) -> YOLOv5:
        """Rebuild from :attr:`spec` (no yaml needed; any channel counts); ``history`` records what was done so far."""
        model = cls(spec, history)
        return model.fuse() if spec.get("fused") else model

    # -- facts ----------------------------------------------------------------------------------------------
    @property
    def detect(self) -> Detect:
        return self.model[-1]

    @property
    def nc(self) -> int:
        return self.detect.nc

    @property
    def strides(self) -> list[float]:
        return list(self.detect.strides)

    def anchors_px(self) -> np.ndarray:
        """Anchors in input pixels, shape ``(nl, na, 2)``."""
        d = self.detect
        return (d.anchors.detach().float().cpu() * torch.tensor(d.strides).view(-1, 1, 1)).numpy()

    @property
    def spec(self) -> dict:
        """JSON-able architecture: layers with every width, classes, anchors (pixels), strides, fused flag."""
        return {"nc": self.nc, "names": list(self.names), "anchors": self.anchors_px().tolist(),
                "strides": self.strides, "fused": self.fused, "layers": copy.deepcopy(self._layer_specs)}

    def meta(self, img_size: int | tuple[int, int], head: str = "raw", batch: int = 1, dynamic: bool = False,
             history: Sequence[dict] = ()) -> ModelMeta:
        """Model facts for a runtime at input size ``img_size`` (int or (h, w)); ``history`` steps are appended to
        the model's own."""
        return ModelMeta(names=list(self.names), strides=self.strides, anchors=self.anchors_px(),
                         img_size=as_hw(img_size), head=head, batch=batch, dynamic=dynamic,
                         history=copy.deepcopy([*self.history, *history]))

    # -- inference ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs: list[Any] = []
        for m in self.model:
            if m.f != -1:
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            x = m(x)
            outputs.append(x if m.i in self.save else None)
        return x

    def decode(self, heads: Sequence[torch.Tensor], grids: Grids | None = None) -> torch.Tensor:
        """Raw heads -> ``[N, K, 5 + nc]`` (xywh in input pixels, sigmoid scores); see :meth:`Detect.decode`."""
        return self.detect.decode(heads, grids)

    def fuse(self) -> YOLOv5:
        """Fold every BatchNorm into its conv (in place) and return the model."""
        for m in self.modules():
            if isinstance(m, Conv):
                m.fuse()
        self.fused = True
        return self
