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
largest safe percent (:class:`.planner.Thresholds`). They go into ``results.csv`` (``sparsity/*``
columns), ``sparsity/gamma_epoch<E>.png`` (one histogram per epoch) and ``sparsity/gamma_histograms.png``
(all epochs stacked, the distribution collapsing towards 0, as in the seed's figure).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from ..errors import AscendSlimError
from ..fileio import atomic_write_bytes
from ..train.callbacks import Callback
from .groups import build_graph
from .importance import BNScaleImportance
from .planner import Thresholds

SMALL_GAMMA = 1e-2
HISTOGRAM_BINS = 60


def prunable_batchnorms(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    """Every BatchNorm a channel prune can shrink (each Conv+BN unit's ``bn``), by qualified module name."""
    modules = dict(model.named_modules())
    return {unit.bn: modules[unit.bn] for unit in build_graph(model).units.values()}


def gamma_stats(model: nn.Module) -> dict[str, float]:
    """``small_gamma_fraction`` (|γ| < 1e-2 over all prunable channels), ``safety_bound`` and
    ``max_safe_percent`` of a one-threshold prune of ``model`` by BN |γ|."""
    graph = build_graph(model)
    thresholds = Thresholds(graph, BNScaleImportance()(model, graph))
    gammas = all_gammas(model)
    return {"small_gamma_fraction": float((gammas < SMALL_GAMMA).mean()),
            "safety_bound": thresholds.safety_bound, "max_safe_percent": thresholds.max_safe_percent}


def all_gammas(model: nn.Module) -> np.ndarray:
    """|γ| of every prunable BatchNorm channel, as one float64 array."""
    with torch.no_grad():
        return torch.cat([bn.weight.detach().abs().float().cpu() for bn in prunable_batchnorms(model).values()]
                         ).double().numpy()


class SparsityRegularizer(Callback):
    """The L1 subgradient on prunable BN scales (and optionally biases), plus per-epoch γ statistics and plots.

    ``rate`` SR > 0, ``decay`` in [0, 1] (SR falls linearly to ``(1 − decay)·SR`` by the last epoch), ``beta``
    K >= 0 (the bias term ``K·SR·sign(β)``, constant). ``channels``: penalise only these channels (BN name ->
    channel indices, e.g. the ones a prune plan removes; BNs not named are left alone); None: every channel.
    ``plots``: write the PNGs under ``save_dir/sparsity``.
    """

    name = "sparsity"

    def __init__(self, rate: float, decay: float = 0.9, beta: float = 0.0,
                 channels: Mapping[str, Sequence[int]] | None = None, plots: bool = True) -> None:
        if not rate > 0:
            raise AscendSlimError(f"sparsity rate must be positive, got {rate}")
        if not 0.0 <= decay <= 1.0:
            raise AscendSlimError(f"sparsity decay must lie in [0, 1], got {decay}")
        if beta < 0:
            raise AscendSlimError(f"sparsity beta factor must be 0 or more, got {beta}")
        self.rate, self.decay, self.beta, self.plots = float(rate), float(decay), float(beta), plots
        self.channels = None if channels is None else {k: [int(i) for i in v] for k, v in channels.items()}
        self.batchnorms: list[tuple[nn.BatchNorm2d, torch.Tensor | None]] = []  # (BN, channel mask or None: all)
        self.edges: list[float] = []  # histogram bin edges, fixed at the first epoch so epochs compare
        self.history: list[dict] = []  # per finished epoch: epoch, histogram counts and gamma_stats

    def rate_at(self, epoch: int, epochs: int) -> float:
        """The γ rate during ``epoch`` (0-based) of ``epochs``."""
        return self.rate * (1.0 - self.decay * epoch / epochs)

    def on_fit_start(self, trainer) -> None:
        batchnorms = prunable_batchnorms(trainer.model)
        unknown = sorted(set(self.channels or ()) - set(batchnorms))
        if unknown:
            raise AscendSlimError(f"sparsity channels name BatchNorms the model lacks: {', '.join(unknown[:3])}")
        self.batchnorms = []
        for name, bn in batchnorms.items():
            if self.channels is None:
                self.batchnorms.append((bn, None))
            elif self.channels.get(name):
                mask = torch.zeros(bn.num_features, device=bn.weight.device)
                mask[self.channels[name]] = 1.0
                self.batchnorms.append((bn, mask))

    def after_backward(self, trainer) -> None:
        gamma_rate = self.rate_at(trainer.epoch, trainer.epochs)
        with torch.no_grad():
            for bn, mask in self.batchnorms:
                gamma_term = gamma_rate * torch.sign(bn.weight)
                _add_to_grad(bn.weight, gamma_term if mask is None else gamma_term * mask)
                if self.beta:
                    beta_term = self.beta * self.rate * torch.sign(bn.bias)
                    _add_to_grad(bn.bias, beta_term if mask is None else beta_term * mask)

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
        return {"rate": self.rate, "decay": self.decay, "beta": self.beta, "channels": self.channels,
                "edges": list(self.edges), "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.edges, self.history = list(state["edges"]), list(state["history"])

    @classmethod
    def from_state(cls, state: dict, plots: bool = True) -> SparsityRegularizer:
        """The callback a checkpoint was trained with (its settings and history), to resume that run."""
        callback = cls(state["rate"], state["decay"], state["beta"], state["channels"], plots=plots)
        callback.load_state_dict(state)
        return callback


def _add_to_grad(param: nn.Parameter, term: torch.Tensor) -> None:
    if param.grad is None:
        param.grad = term.clone()
    else:
        param.grad.add_(term)


def plot_gamma_histograms(history: list[dict], edges: list[float], path: str | Path) -> Path:
    """One |γ| histogram per entry of ``history`` (``epoch``, ``counts``), stacked bottom (first) to top (last),
    each labelled with its epoch and fraction of |γ| < 1e-2."""
    fig = Figure(figsize=(7, 1.2 + 0.45 * max(len(history), 4)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    centers = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
    peak = max(max(h["counts"]) for h in history) or 1
    step = 0.8 if len(history) > 1 else 1.0
    for k, h in enumerate(history):
        base = k * step
        y = base + np.asarray(h["counts"], dtype=float) / peak * 1.6
        colour = (0.15, 0.35 + 0.5 * k / max(len(history) - 1, 1), 0.75)
        ax.fill_between(centers, base, y, color=colour, alpha=0.7, lw=0, zorder=len(history) - k)
        ax.plot(centers, y, color="black", lw=0.6, zorder=len(history) - k)
        ax.text(edges[-1], base + 0.05, f"epoch {h['epoch']}  |γ|<1e-2: {h['small_gamma_fraction']:.1%}",
                ha="right", va="bottom", fontsize=7)
    ax.set_yticks([])
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("|γ| of prunable BatchNorm channels")
    ax.set_title("BN scale distribution per epoch (sparsity training)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path
