"""Hooks into :class:`ascend_slim.train.trainer.Trainer`: subclass :class:`Callback`, override what you need and
pass instances as ``Trainer(..., callbacks=[...])``. Sparsity training, distillation and per-epoch plots are
callbacks; the training loop itself is never copied.

Call order (every hook gets the trainer; read ``trainer.model`` (the bare training model), ``trainer.ema``,
``trainer.optimizer``, ``trainer.scaler``, ``trainer.epoch``, ``trainer.epochs``, ``trainer.device``,
``trainer.save_dir``, ``trainer.is_main``)::

    on_fit_start                       once, after set-up and any resume, before the first epoch
    for each epoch:
        on_epoch_start(epoch)
        for each batch:
            forward under autocast -> YOLO loss
            extra_loss(batch)          -> (term, items) added to the loss, or None
            scaler.scale(loss).backward()
            every optimiser step (gradients accumulated to the nominal batch of 64 images):
                scaler.unscale_(optimizer)
                after_backward         gradients are unscaled, summed over the accumulated batches and
                                       (DDP) averaged over ranks; nothing has been clipped or stepped yet
                clip gradient norm at 10, scaler.step(optimizer), scaler.update(), EMA update
        validation (main rank)
        epoch_metrics(epoch)           main rank only; values added to the epoch's results.csv row
        results.csv, last.pt / best.pt
        on_epoch_end(epoch, metrics)   main rank only; ``metrics`` holds the epoch's row of results.csv
    on_fit_end                         once, after the last epoch (main rank only)

Details:

- ``extra_loss`` runs inside the forward's autocast context on every rank. The returned term is added to the
  YOLO loss as is, which is ``(lbox + lobj + lcls) · batch_size``: scale the term the same way. ``items``
  (name -> float) are averaged over the epoch, shown in the progress bar and written to results.csv as
  ``train/<name>``. To draw other images (e.g. unlabelled ones for distillation), call
  ``trainer.forward(images)``: the training model (DDP-wrapped when distributed) on a uint8 or float batch.
- ``after_backward`` runs on every rank before the optimiser step, so a change to ``param.grad`` (an L1
  subgradient on BatchNorm weights) is exact under AMP, is clipped with the rest and reaches the EMA
  through the step. With DDP the gradients are already averaged: add the same term on every rank.
- A callback with a non-empty ``name`` has its :meth:`Callback.state_dict` saved in every training
  checkpoint under that name and restored with :meth:`Callback.load_state_dict` on resume (include the
  callback's settings there). A subclass that also defines the classmethod ``from_state(state)`` is registered
  under its ``name``: :func:`restore_callbacks` rebuilds a checkpoint's callbacks from their saved states
  (``load_training_state(last_pt)["callbacks"]``) once the module defining the class is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import torch
from torch import nn

from ..errors import AscendSlimError
from .ema import ModelEMA

ExtraLoss = Optional[tuple[torch.Tensor, dict[str, float]]]


class Trainer(Protocol):
    """What hooks read from :class:`ascend_slim.train.trainer.Trainer` (the object passed to every hook)."""

    model: nn.Module  # the bare training model (never the DDP wrapper)
    ema: ModelEMA | None  # on the main rank (``ema.ema`` is the averaged model); None on the others
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    epoch: int
    epochs: int
    device: torch.device
    save_dir: Path
    is_main: bool

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]: ...


@dataclass
class TrainBatch:
    """One training batch as the loss saw it."""

    images: torch.Tensor  # [B, 3, H, W] float, RGB 0..1, on the training device
    targets: torch.Tensor  # [M, 6] (image index, class, cx, cy, w, h), normalised
    heads: list[torch.Tensor]  # the model's raw outputs [B, na, ny, nx, 5 + nc]
    paths: list[str]


class Callback:
    """Base class of training hooks; every hook does nothing unless overridden (see the module docstring)."""

    name: str = ""  # non-empty: state saved in checkpoints and restored on resume under this key

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name and "from_state" in cls.__dict__:
            RESTORABLE[cls.name] = cls

    def on_fit_start(self, trainer: Trainer) -> None:
        """Once before the first epoch (after a resume has restored the state)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the first batch of ``epoch`` (0-based), on every rank; the model is in training mode."""

    def extra_loss(self, trainer: Trainer, batch: TrainBatch) -> ExtraLoss:
        """An extra term for this batch and the values to log with it, or None."""
        return None

    def after_backward(self, trainer: Trainer) -> None:
        """After ``scaler.unscale_``, before gradient clipping, the optimiser step and the EMA update."""

    def epoch_metrics(self, trainer: Trainer, epoch: int) -> dict[str, float]:
        """Values (name -> number) to add to ``epoch``'s results.csv row; main rank, after validation."""
        return {}

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """After validation and saving, main rank only; ``metrics`` is the epoch's results.csv row."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch, main rank only."""

    def state_dict(self) -> dict:
        """Plain data (and tensors) to store in checkpoints; used when ``name`` is set."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""


RESTORABLE: dict[str, type[Callback]] = {}  # callback name -> the class whose ``from_state`` rebuilds it


def restore_callbacks(states: dict[str, dict]) -> list[Callback]:
    """The callbacks a checkpoint's run used, rebuilt from their saved states (``training["callbacks"]``)."""
    unknown = sorted(set(states) - set(RESTORABLE))
    if unknown:
        raise AscendSlimError(f"the run used callbacks {unknown} that cannot be rebuilt (known: "
                              f"{sorted(RESTORABLE) or 'none'})")
    return [RESTORABLE[name].from_state(state) for name, state in states.items()]


class FrozenBatchNormStats(Callback):
    """Training with every BatchNorm's running statistics frozen (the layers run in eval mode; γ and β still
    learn): small or mosaic-augmented batches then cannot shift statistics estimated on the original data."""

    name = "freeze_bn"

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        for module in trainer.model.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
                module.eval()

    @classmethod
    def from_state(cls, state: dict) -> FrozenBatchNormStats:
        return cls()
