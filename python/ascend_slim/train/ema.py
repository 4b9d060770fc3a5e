"""Exponential moving average of a model's weights (YOLOv5 ``ModelEMA``): the weights that are validated
and saved for inference.

After update ``k`` every floating-point parameter and buffer is ``ema = d·ema + (1 − d)·model`` with
``d = decay · (1 − exp(−k / ramp))``, so early updates follow the model closely.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

EMA_DECAY = 0.9999
EMA_RAMP = 2000


class ModelEMA:
    """An fp32 copy of ``model`` in eval mode, averaged by :meth:`update` after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float = EMA_DECAY, ramp: float = EMA_RAMP, updates: int = 0) -> None:
        self.ema = copy.deepcopy(model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay, self.ramp, self.updates = decay, ramp, updates

    def decay_at(self, updates: int) -> float:
        return self.decay * (1 - math.exp(-updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Average in the current weights of ``model`` (the bare module, not a DDP wrapper)."""
        self.updates += 1
        d = self.decay_at(self.updates)
        current = model.state_dict()
        averaged, fresh = [], []
        for key, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                averaged.append(value)
                fresh.append(current[key].detach())
        torch._foreach_mul_(averaged, d)
        torch._foreach_add_(averaged, fresh, alpha=1 - d)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "weights": self.ema.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
