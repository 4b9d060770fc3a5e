"""PNG plots of an evaluation: precision-recall curves and the per-class AP chart (matplotlib, Agg)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..fileio import atomic_write_bytes
from .metrics import METRIC_LABELS, EvalResult, precision_envelope_at

_RECALL_GRID = np.linspace(0.0, 1.0, 1001)


def _figure(size: tuple[int, int]) -> Figure:
    fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas of its own: no pyplot, no global backend
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_pr_curves(result: EvalResult, path: str | Path, size: tuple[int, int] = (1000, 600)) -> Path:
    """Interpolated precision (max precision at recall >= r) against recall at IoU 0.5, one line per class
    with ground truth, and their mean in bold; the legend gives each all-point AP@0.5."""
    fig = _figure(size)
    ax = fig.add_axes((0.07, 0.1, 0.66, 0.82))
    curves = []
    for c, name in enumerate(result.class_names):
        if result.npos[c] == 0:
            continue
        recall, precision = result.curves[c]
        curve = precision_envelope_at(recall, precision, _RECALL_GRID)
        curves.append(curve)
        ax.plot(_RECALL_GRID, curve, lw=0.9, label=f"{name} {result.ap50[c]:.3f}")
    if curves:
        ax.plot(_RECALL_GRID, np.mean(curves, axis=0), lw=2.5, color="black",
                label=f"all classes {result.mean('ap50'):.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title=f"Precision-recall, IoU 0.5 ({result.num_images} images)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="AP@0.5 (all-point)")
    return _save(fig, path)


def plot_class_ap(result: EvalResult, path: str | Path, size: tuple[int, int] = (1000, 600)) -> Path:
    """Horizontal bars per class: AP@0.5 (all-point) and AP@0.5:0.95, with their means as dashed lines."""
    fig = _figure(size)
    ax = fig.add_axes((0.16, 0.1, 0.8, 0.82))
    y = np.arange(len(result.class_names))
    for offset, metric, color in ((-0.2, "ap50", "tab:blue"), (0.2, "ap50_95", "tab:orange")):
        values = np.nan_to_num(result.per_class(metric), nan=0.0)
        mean = result.mean(metric)
        ax.barh(y + offset, values, height=0.4, color=color, label=f"{METRIC_LABELS[metric]}: mean {mean:.3f}")
        if not np.isnan(mean):
            ax.axvline(mean, color=color, ls="--", lw=1)
    ax.set_yticks(y, [f"{n} ({k})" for n, k in zip(result.class_names, result.npos)], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="AP", title="AP per class (ground-truth count in brackets)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
