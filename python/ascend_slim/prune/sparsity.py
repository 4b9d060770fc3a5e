"""Sparsity training (network slimming): an L1 penalty on the BatchNorm scales that pruning ranks channels by.

:class:`SparsityRegularizer` is a training callback. At every optimiser step, after the gradients are
unscaled (so it is exact under AMP) and before clipping, the step and the EMA update, it adds the L1
subgradient ``rate · (1 − decay · epoch / epochs) · sign(γ)`` to the gradient of the weight γ of **every**
prunable BatchNorm — the BN of each Conv+BN unit of :func:`.groups.build_graph`, residual groups included
(midasklr skips them; here a residual stream is pruned as one group, so its scales are regularised like the
rest). With ``beta`` K > 0 it also adds the constant ``K · rate · sign(β)`` to the BN biases (midasklr uses
K = 10): small β make the constant output of a removed channel small. Detect's convs have no BN and are
never touched.

The rate is per optimiser step, which in :class:`~ascend_slim.train.trainer.Trainer` covers the nominal
batch of 64 images (the YOLO loss is summed over them); midasklr steps every batch of ``b`` images, so its
``--sr s`` corresponds to about ``s · 64 / b`` here.

After every epoch (main rank) it records, for the weights a prune would read (the EMA's): the histogram
of |γ| over all prunable channels, the fraction with |γ| < 1e-2, and the pruning safety bound with its
largest safe percent (:mod:`.gamma`, which also draws them). They go into ``results.csv`` (``sparsity/*``
columns), ``sparsity/gamma_epoch<E>.png`` (one histogram per epoch) and ``sparsity/gamma_histograms.png``
(all epochs stacked, the distribution collapsing towards 0, as in the seed's figure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import AscendSlimError
from ..train.callbacks import Callback
from .gamma import HISTOGRAM_BINS, all_gammas, gamma_stats, plot_gamma_histograms, prunable_batchnorms


class SparsityRegularizer(Callback):
    """The L1 subgradient on prunable BN scales (and optionally biases), plus per-epoch γ statistics and plots.

    ``rate`` SR > 0, ``decay`` in [0, 1] (SR falls linearly to ``(1 − decay)·SR`` by the last epoch), ``beta``
    K >= 0 (the bias term ``K·SR·sign(β)``, constant). ``plots``: write the PNGs under ``save_dir/sparsity``.
    """

    name = "sparsity"

    def __init__(self, rate: float, decay: float = 0.9, beta: float = 0.0, plots: bool = True) -> None:
        if not rate > 0:
            raise AscendSlimError(f"sparsity rate must be positive, got {rate}")
        if not 0.0 <= decay <= 1.0:
            raise AscendSlimError(f"sparsity decay must lie in [0, 1], got {decay}")
        if beta < 0:
            raise AscendSlimError(f"sparsity beta factor must be 0 or more, got {beta}")
        self.rate, self.decay, self.beta, self.plots = float(rate), float(decay), float(beta), plots
        self.batchnorms: list[nn.BatchNorm2d] = []
        self.edges: list[float] = []  # histogram bin edges, fixed at the first epoch so epochs compare
        self.history: list[dict] = []  # per finished epoch: epoch, histogram counts and gamma_stats

    def rate_at(self, epoch: int, epochs: int) -> float:
        """The γ rate during ``epoch`` (0-based) of ``epochs``."""
        return self.rate * (1.0 - self.decay * epoch / epochs)

    def on_fit_start(self, trainer) -> None:
        self.batchnorms = list(prunable_batchnorms(trainer.model).values())

    def after_backward(self, trainer) -> None:
        gamma_rate = self.rate_at(trainer.epoch, trainer.epochs)
        with torch.no_grad():
            for bn in self.batchnorms:
                _add_to_grad(bn.weight, gamma_rate * torch.sign(bn.weight))
                if self.beta:
                    _add_to_grad(bn.bias, self.beta * self.rate * torch.sign(bn.bias))

    def epoch_metrics(self, trainer, epoch: int) -> dict[str, float]:
        model = trainer.ema.ema if trainer.ema is not None else trainer.model
        gammas = all_gammas(model)
        if not self.edges:
            self.edges = np.linspace(0.0, float(gammas.max()) * 1.05 or 1.0, HISTOGRAM_BINS + 1).tolist()
        counts, _ = np.histogram(np.minimum(gammas, self.edges[-1]), bins=self.edges)
        stats = gamma_stats(model)
        self.history = [h for h in self.history if h["epoch"] < epoch]
        self.history.append({"epoch": epoch, "counts": counts.tolist(), **stats})
        if self.plots:
            folder = Path(trainer.save_dir) / "sparsity"
            plot_gamma_histograms(self.history[-1:], self.edges, folder / f"gamma_epoch{epoch:03d}.png")
            plot_gamma_histograms(self.history, self.edges, folder / "gamma_histograms.png")
        return {"sparsity/rate": self.rate_at(epoch, trainer.epochs), **{f"sparsity/{k}": v for k, v in stats.items()}}

    def state_dict(self) -> dict:
        return {"rate": self.rate, "decay": self.decay, "beta": self.beta,
                "edges": list(self.edges), "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.edges, self.history = list(state["edges"]), list(state["history"])

    @classmethod
    def from_state(cls, state: dict) -> SparsityRegularizer:
        """The callback a checkpoint was trained with (its settings and history), to resume that run."""
        callback = cls(state["rate"], state["decay"], state["beta"])
        callback.load_state_dict(state)
        return callback


def _add_to_grad(param: nn.Parameter, term: torch.Tensor) -> None:
    if param.grad is None:
        param.grad = term.clone()
    else:
        param.grad.add_(term)
