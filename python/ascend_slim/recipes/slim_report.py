"""The report of a slim run: ``report.md``, ``report.json`` and ``report.png`` in the run folder.

Figures: the |γ| distribution of the prunable BatchNorms before and after sparsity training, mAP and
onnxruntime latency of the original and the slimmed model, and the kept width of every prunable layer.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..evaluation.metrics import METRIC_LABELS
from ..evaluation.protocol import HEADLINE_METRICS, VAL_SETTINGS
from ..fileio import atomic_write_bytes, atomic_write_text
from ..model.checkpoint import load_weights
from ..model.yolo import YOLOv5
from ..prune.gamma import all_gammas, gamma_stats, prunable_batchnorms

MAP_KEYS = {key: f"m{METRIC_LABELS[key]}" for key in HEADLINE_METRICS}  # mAP@0.5 VOC07 11-point, ...


class FinishedRun(Protocol):
    """What the report reads from a :class:`~ascend_slim.recipes.slim.SlimRun`."""

    config: Any
    dir: Path
    records: dict[str, Any]  # stage name -> StageRecord (seconds, cpu_seconds, result)

    def result(self, name: str) -> Any: ...

    def original_model(self) -> YOLOv5: ...


def _summary(run: FinishedRun) -> dict:
    """The numbers of the report, from the run's settings and finished stages."""
    evaluation, latency, prune = (run.result(k) for k in ("evaluate", "latency", "prune"))
    maps = {key: {"original": evaluation.original[key], "final": evaluation.final[key],
                  "change_points": 100 * (evaluation.final[key] - evaluation.original[key])}
            for key in MAP_KEYS}
    speed = {key: {**value, "speedup": 1 / value["ratio"]} for key, value in latency.threads.items()}
    sparse = run.result("sparsity")
    before = gamma_stats(run.original_model())
    return {
        "config": run.config.to_dict(),
        "split": evaluation.split, "images": evaluation.images, "img_size": evaluation.img_size,
        "map": maps, "latency": speed, "machine": latency.machine,
        "prune": {k: prune.summary[k] for k in ("percent", "threshold", "safety_bound", "max_safe_percent",
                                                "round_to", "params", "gflops", "reached") if k in prune.summary},
        "sparsity": {"gamma_before": before,
                     "gamma_after": gamma_stats(load_weights(sparse.checkpoint)[0]) if sparse else before},
        "stages": {name: {"seconds": r.seconds, "cpu_seconds": r.cpu_seconds} for name, r in run.records.items()},
        "total_seconds": sum(r.seconds for r in run.records.values()),
        "total_cpu_seconds": sum(r.cpu_seconds for r in run.records.values()),
    }


def _widths(folder: Path, original: YOLOv5) -> tuple[list[str], list[int], list[int]]:
    """Per prunable BatchNorm (model order): name, width before and after pruning (from ``prune.json``)."""
    kept = json.loads((folder / "prune.json").read_text())["kept"]
    names, before, after = [], [], []
    for name, bn in prunable_batchnorms(original).items():
        names.append(name.removeprefix("model.").removesuffix(".bn"))
        before.append(bn.num_features)
        after.append(len(kept.get(name, range(bn.num_features))))
    return names, before, after


def _plot(folder: Path, original: YOLOv5, sparse_checkpoint: str | None, summary: dict) -> None:
    fig = Figure(figsize=(14, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[0, 0])
    before = all_gammas(original)
    after = all_gammas(load_weights(sparse_checkpoint)[0]) if sparse_checkpoint else before
    bins = np.linspace(0, max(before.max(), after.max()) * 1.02, 60)
    ax.hist(before, bins=bins, histtype="step", lw=1.5, label="original")
    if sparse_checkpoint:
        ax.hist(after, bins=bins, histtype="step", lw=1.5, label="after sparsity training")
    ax.axvline(summary["prune"]["threshold"], color="red", lw=1, label="prune threshold")
    ax.set_xlabel("|γ| of prunable BatchNorm channels")
    ax.set_title("BN scales")
    ax.legend(fontsize="small")

    ax = fig.add_subplot(grid[0, 1])
    x = np.arange(len(MAP_KEYS))
    for model, offset in (("original", -0.2), ("final", 0.2)):
        values = [summary["map"][key][model] for key in MAP_KEYS]
        bars = ax.bar(x + offset, values, 0.4, label=model)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, list(MAP_KEYS.values()), fontsize=8)
    ax.set_title(f"accuracy on {summary['split']} ({summary['images']} images, {summary['img_size']} px)")
    ax.legend(fontsize="small")

    ax = fig.add_subplot(grid[0, 2])
    keys = ("1 thread", "all cores")
    x = np.arange(len(keys))
    for model, offset in (("original", -0.2), ("final", 0.2)):
        bars = ax.bar(x + offset, [summary["latency"][k][f"{model}_ms"] for k in keys], 0.4, label=model)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, [f"{k}\n{summary['latency'][k]['speedup']:.2f}x" for k in keys])
    ax.set_ylabel("onnxruntime CPU latency, ms (median)")
    ax.set_title("speed (side by side)")
    ax.legend(fontsize="small")

    ax = fig.add_subplot(grid[1, :])
    names, width_before, width_after = _widths(folder, original)
    x = np.arange(len(names))
    ax.bar(x, width_before, color="lightgray", label="original")
    ax.bar(x, width_after, color="tab:blue", label="pruned")
    ax.set_xticks(x, names, rotation=90, fontsize=6)
    ax.set_ylabel("output channels")
    ax.set_title(f"per-layer widths (round-to {summary['prune']['round_to']})")
    ax.legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(folder / "report.png", buf.getvalue())


def _markdown(summary: dict, layers: list[dict]) -> str:
    c, p = summary["config"], summary["prune"]
    goal = f"percent {c['percent']}" if c["percent"] is not None else f"target latency {c['target_latency']}"
    distill = f"on (weight {c['distill_weight']})" if c["distill"] else "off"
    lines = [
        "# Network slimming report", "",
        f"`{c['weights']}` ({c['classes'] or 'own classes'}) on `{c['data']}`; prune by {goal}, round-to "
        f"{c['round_to']}; sparsity {c['sparsity_epochs']} epochs (rate {c['sparsity_rate']}), finetune "
        f"{c['finetune_epochs']} epochs, distillation {distill}"
        f"; training at {c['train']['img_size']} px.", "",
        f"Evaluated on `{summary['split']}` ({summary['images']} images) at {summary['img_size']} px, conf "
        f"{VAL_SETTINGS['conf_thres']}, IoU {VAL_SETTINGS['iou_thres']}, multi-label; last-epoch weights.", "",
        "| | original | slimmed | change |", "|---|---:|---:|---:|",
    ]
    for key, label in MAP_KEYS.items():
        m = summary["map"][key]
        lines.append(f"| {label} | {m['original']:.4f} | {m['final']:.4f} | {m['change_points']:+.2f} points |")
    for key, lat in summary["latency"].items():
        lines.append(f"| latency {key}, ms | {lat['original_ms']:.1f} | {lat['final_ms']:.1f} | "
                     f"{lat['speedup']:.2f}x faster |")
    lines.append(f"| parameters | {p['params'][0]:,} | {p['params'][1]:,} | {p['params'][1] / p['params'][0]:.2f}x |")
    lines.append(f"| GFLOPs @{c['img_size']} | {p['gflops'][0]:.2f} | {p['gflops'][1]:.2f} | "
                 f"{p['gflops'][1] / p['gflops'][0]:.2f}x |")
    gb, ga = summary["sparsity"]["gamma_before"], summary["sparsity"]["gamma_after"]
    lines += [
        "", f"Latency: onnxruntime CPU, static {summary['img_size']} ONNX, both models side by side (round-robin "
        f"medians of {c['latency_runs']} runs) on {summary['machine']['model']} ({summary['machine']['cores']} cores).",
        "", "## Pruning", "",
        f"Global threshold {p['threshold']:.4g} at percent {p['percent']:.3f}; safety bound {p['safety_bound']:.4g} "
        f"(largest safe percent {p['max_safe_percent']:.3f}).",
        f"BN |γ| < 1e-2: {gb['small_gamma_fraction']:.1%} before sparsity training, {ga['small_gamma_fraction']:.1%} "
        f"after; safety bound {gb['safety_bound']:.4g} -> {ga['safety_bound']:.4g}.",
    ]
    if p.get("reached"):
        lines.append(f"Target reached: {json.dumps({k: v for k, v in p['reached'].items() if k != 'measured'})}.")
    lines += ["", "| # | type | widths before | widths after | params before | params after | GFLOPs before | "
              "GFLOPs after |", "|---:|---|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['index']} | {r['type']} | {r['widths_before']} | {r['widths_after']} | {r['params_before']:,} | "
              f"{r['params_after']:,} | {r['gflops_before']:.3f} | {r['gflops_after']:.3f} |" for r in layers]
    lines += ["", "## Stages", "", "| stage | wall-clock s | CPU s |", "|---|---:|---:|"]
    lines += [f"| {name} | {s['seconds']:.0f} | {s['cpu_seconds']:.0f} |" for name, s in summary["stages"].items()]
    lines += [f"| total (before this report) | {summary['total_seconds']:.0f} | {summary['total_cpu_seconds']:.0f} |",
              "", "Files: `final.pt`, `final.onnx`, `pruned.pt`, `prune.json`, `eval.json`, `report.png`"
              + (f", Ascend bundle `{c['deploy']}`" if c["deploy"] else "") + ".", ""]
    return "\n".join(lines)


def write_report(run: FinishedRun) -> dict:
    """Write ``report.md``, ``report.json`` and ``report.png`` into the run folder from the run's settings and
    finished stages; returns the headline numbers (``report``, ``map``, ``latency``)."""
    summary = _summary(run)
    layers = run.result("prune").layers
    sparse = run.result("sparsity")
    _plot(run.dir, run.original_model(), sparse.checkpoint if sparse else None, summary)
    atomic_write_text(run.dir / "report.json", json.dumps({**summary, "layers": layers}, indent=2) + "\n")
    atomic_write_text(run.dir / "report.md", _markdown(summary, layers))
    return {"report": str(run.dir / "report.md"), "map": summary["map"], "latency": summary["latency"]}
