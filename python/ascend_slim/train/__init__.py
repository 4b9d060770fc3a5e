"""The training engine: YOLOv5-exact loss, optimiser and schedule, EMA, the ``Trainer`` with its callbacks,
checkpointed resume and torchrun DDP. Sparsity training and finetuning are the same ``Trainer`` with other
callbacks.

``from ascend_slim.train import Trainer, TrainConfig`` works; importing the package alone does not import torch
(``TrainConfig`` lives in the torch-free :mod:`.config`, ``Trainer`` is loaded on first use)."""

from __future__ import annotations

from typing import Any

from .config import TrainConfig

__all__ = ["TrainConfig", "Trainer"]


def __getattr__(name: str) -> Any:
    if name == "Trainer":
        from .trainer import Trainer

        return Trainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
