"""PyTorch backend for ``.pt`` checkpoints (reference runs and parity checks; imports torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Backend


class TorchBackend(Backend):
    """Runs an imported checkpoint in PyTorch on the CPU, returning the same raw heads as the ONNX export."""

    name = "torch"

    def __init__(self, weights: Path, img_size: int | tuple[int, int] = 640) -> None:
        import torch

        from ..model.checkpoint import load_weights

        self._torch = torch
        model, _ = load_weights(weights)
        self.model = model.fuse().eval()
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.meta = self.model.meta(size, head="raw")
        self.meta.dynamic = True

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        with self._torch.inference_mode():
            heads = self.model(self._torch.from_numpy(np.ascontiguousarray(tensor)))
        return [h.numpy() for h in heads]
