"""The callbacks of a training run from plain settings: sparsity training and distillation.

Importing this module registers both classes for :func:`ascend_slim.train.callbacks.restore_callbacks`.
"""

from __future__ import annotations

from pathlib import Path

from ..distill import Distiller
from ..errors import AscendSlimError
from ..prune.sparsity import SparsityRegularizer
from ..train.callbacks import Callback, FrozenBatchNormStats


def training_callbacks(sparsity: float = 0.0, sparsity_decay: float = 0.9, sparsity_beta: float = 0.0,
                       distill: str | Path | None = None, distill_weight: float = 1.0,
                       distill_images: str | Path | None = None, freeze_bn: bool = False) -> list[Callback]:
    """Sparsity training (L1 rate ``sparsity`` > 0), distillation from the checkpoint ``distill`` and frozen
    BatchNorm statistics (``freeze_bn``); none when all are off."""
    if distill_images and not distill:
        raise AscendSlimError("distillation images need a teacher (--distill): they only feed the distillation term")
    callbacks: list[Callback] = []
    if sparsity:
        callbacks.append(SparsityRegularizer(sparsity, sparsity_decay, sparsity_beta))
    if distill:
        callbacks.append(Distiller(distill, distill_weight, distill_images or None))
    if freeze_bn:
        callbacks.append(FrozenBatchNormStats())
    return callbacks
