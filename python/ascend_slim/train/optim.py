"""Optimiser and learning-rate schedule as YOLOv5 v7.0 ``train.py`` sets them up.

Three parameter groups: 0) biases (no decay; their warm-up learning rate starts at ``warmup_bias_lr``),
1) conv/linear weights (weight decay), 2) normalisation-layer weights (no decay). SGD uses Nesterov momentum;
Adam and AdamW use ``momentum`` as beta1. Gradients are accumulated to a nominal batch of 64 images and the
weight decay is scaled by ``batch_size · accumulate / 64``.

The schedule is a pure function of the integrated batch index ``ni`` and the epoch (:meth:`Schedule.apply`):
during the first ``max(warmup_epochs · batches_per_epoch, 100)`` batches the learning rates rise linearly
(biases fall from ``warmup_bias_lr``), momentum rises from ``warmup_momentum`` and the accumulation count
grows from 1; afterwards each group's rate is ``lr0 · lf(epoch)`` with ``lf`` linear or cosine from 1 to
``lrf``. Being stateless, it resumes exactly from the epoch alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import AscendSlimError
from .config import OPTIMIZERS

NOMINAL_BATCH = 64
MIN_WARMUP_ITERS = 100
GROUP_NAMES = ("bias", "weight", "norm_weight")  # the ``name`` of param groups 0, 1, 2


def accumulate_steps(batch_size: int) -> int:
    """Batches whose gradients are summed before one optimiser step: ``round(64 / batch_size)``, at least 1."""
    return max(round(NOMINAL_BATCH / batch_size), 1)


def scaled_weight_decay(weight_decay: float, batch_size: int) -> float:
    """``weight_decay`` at the nominal batch, rescaled to the effective batch ``batch_size · accumulate``."""
    return weight_decay * batch_size * accumulate_steps(batch_size) / NOMINAL_BATCH


def build_optimizer(model: nn.Module, name: str, lr0: float, momentum: float, weight_decay: float
                    ) -> torch.optim.Optimizer:
    """The optimiser ``name`` (SGD, Adam or AdamW) over the three parameter groups of the module docstring.

    ``weight_decay`` is applied as given (scale it with :func:`scaled_weight_decay`); frozen parameters
    (``requires_grad`` False) are left out.
    """
    biases: list[nn.Parameter] = []
    weights: list[nn.Parameter] = []
    norm_weights: list[nn.Parameter] = []
    norm_types = tuple(v for k, v in vars(nn).items() if "Norm" in k and isinstance(v, type))
    for module in model.modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if param_name == "bias":
                biases.append(param)
            elif param_name == "weight" and isinstance(module, norm_types):
                norm_weights.append(param)
            else:
                weights.append(param)
    groups = [{"params": biases, "weight_decay": 0.0}, {"params": weights, "weight_decay": weight_decay},
              {"params": norm_weights, "weight_decay": 0.0}]
    for group, group_name in zip(groups, GROUP_NAMES):
        group.update(name=group_name, initial_lr=lr0)
    if name == "SGD":
        return torch.optim.SGD(groups, lr=lr0, momentum=momentum, nesterov=True)
    if name == "Adam":
        return torch.optim.Adam(groups, lr=lr0, betas=(momentum, 0.999))
    if name == "AdamW":
        return torch.optim.AdamW(groups, lr=lr0, betas=(momentum, 0.999))
    raise AscendSlimError(f"unknown optimizer {name!r}: choose {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class Schedule:
    """Warm-up, per-epoch decay and gradient accumulation (see the module docstring)."""

    epochs: int
    batches_per_epoch: int
    batch_size: int
    lrf: float
    warmup_epochs: float
    warmup_bias_lr: float
    warmup_momentum: float
    momentum: float
    cos_lr: bool = False

    @classmethod
    def from_hyp(cls, hyp: Mapping[str, float], epochs: int, batches_per_epoch: int, batch_size: int,
                 cos_lr: bool = False) -> Schedule:
        return cls(epochs=epochs, batches_per_epoch=batches_per_epoch, batch_size=batch_size, lrf=hyp["lrf"],
                   warmup_epochs=hyp["warmup_epochs"], warmup_bias_lr=hyp["warmup_bias_lr"],
                   warmup_momentum=hyp["warmup_momentum"], momentum=hyp["momentum"], cos_lr=cos_lr)

    @property
    def warmup_iters(self) -> int:
        return max(round(self.warmup_epochs * self.batches_per_epoch), MIN_WARMUP_ITERS)

    def lr_factor(self, epoch: float) -> float:
        """``lf(epoch)``: 1 at epoch 0, falling linearly or along a half cosine to ``lrf`` at ``epochs``."""
        if self.cos_lr:
            return (1 - math.cos(epoch * math.pi / self.epochs)) / 2 * (self.lrf - 1) + 1
        return (1 - epoch / self.epochs) * (1.0 - self.lrf) + self.lrf

    def accumulate(self, ni: int) -> int:
        """Batches per optimiser step at integrated batch ``ni`` (grows from 1 during warm-up)."""
        if ni <= self.warmup_iters:
            ramp = np.interp(ni, [0, self.warmup_iters], [1, NOMINAL_BATCH / self.batch_size])
            return max(1, int(np.round(ramp)))
        return accumulate_steps(self.batch_size)

    def apply(self, optimizer: torch.optim.Optimizer, ni: int, epoch: int) -> None:
        """Set every group's learning rate (and SGD momentum) for integrated batch ``ni`` of ``epoch``."""
        factor = self.lr_factor(epoch)
        warming = ni <= self.warmup_iters
        for j, group in enumerate(optimizer.param_groups):
            target = group["initial_lr"] * factor
            start = self.warmup_bias_lr if j == 0 else 0.0
            group["lr"] = float(np.interp(ni, [0, self.warmup_iters], [start, target])) if warming else target
            if "momentum" in group:
                group["momentum"] = float(np.interp(ni, [0, self.warmup_iters], [self.warmup_momentum,
                                                                                  self.momentum]))
