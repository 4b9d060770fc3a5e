"""The statistics and plots of BatchNorm scales (γ) that channel pruning ranks by: which BNs are prunable, the
|γ| distribution, the fraction of small scales and the pruning safety bound, and the per-epoch histogram
figure of sparsity training (:mod:`.sparsity` is the regulariser that drives them towards 0)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from ..fileio import atomic_write_bytes
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
