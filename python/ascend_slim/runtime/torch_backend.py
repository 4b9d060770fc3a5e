"""PyTorch backend: an in-memory model (training validation) or a ``.pt`` checkpoint (reference runs)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ..meta import ImageSize
from .base import Backend


class TorchBackend(Backend):
    """Runs a :class:`~ascend_slim.model.yolo.YOLOv5` in PyTorch, returning the same raw heads as its ONNX export.

    Any input height and width (multiples of the stride) are accepted, as with a dynamic export. Build it with
    :meth:`from_model` or :meth:`from_weights`; the model given is never modified.
    """

    name = "torch"

    def __init__(self, model, img_size: ImageSize = 640, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.model = copy.deepcopy(model).float().fuse().eval().to(self.device)
        self.meta = self.model.meta(img_size, head="raw", dynamic=True)

    @classmethod
    def from_model(cls, model, img_size: ImageSize = 640, device: str = "cpu") -> TorchBackend:
        """Run a copy of ``model`` (BatchNorm fused, eval mode) on ``device`` (``"cpu"``, ``"cuda:0"``, ...)."""
        return cls(model, img_size, device)

    @classmethod
    def from_weights(cls, weights: str | Path, img_size: ImageSize = 640, device: str = "cpu") -> TorchBackend:
        """Load a ``.pt`` checkpoint (official or ascend-slim) and run it."""
        from ..model.checkpoint import load_weights

        return cls(load_weights(weights)[0], img_size, device)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        with self._torch.inference_mode():
            x = self._torch.from_numpy(np.ascontiguousarray(tensor)).to(self.device)
            heads = self.model(x)
        return [h.float().cpu().numpy() for h in heads]
