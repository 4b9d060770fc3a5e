"""The report of a slim run: ``report.md``, ``report.json`` and ``report.png`` in the run folder.

Figures: mAP and onnxruntime latency of the original and the slimmed model, what each dimension of the plan's
choice contributes (input size, channel cut, INT8: selection mAP and speed), the kept width of every prunable
layer when channels were cut, and the |γ| distribution before and after sparsity training when it ran. The
plan's own Pareto report (every scored candidate) is ``plan/plan.{png,md,json}``.
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
    evaluation, latency, prune, plan = (run.result(k) for k in ("evaluate", "latency", "prune", "plan"))
    maps = {key: {"original": evaluation.original[key], "final": evaluation.final[key],
                  "change_points": 100 * (evaluation.final[key] - evaluation.original[key])}
            for key in MAP_KEYS}
    speed = {key: {**value, "speedup": 1 / value["ratio"]} for key, value in latency.threads.items()}
    sparse = run.result("sparsity")
    summary = {
        "config": run.config.to_dict(),
        "split": evaluation.split, "images": evaluation.images, "img_size": evaluation.img_size,
        "map": maps, "latency": speed, "machine": latency.machine, "runtime": latency.runtime,
        "plan": {"chosen": plan.chosen, "message": plan.message, "scored": plan.scored,
                 "cpu_seconds": plan.cpu_seconds, "contributions": plan.contributions, "report": plan.report,
                 "selection_estimate": plan.selection_estimate, "latency_flag": plan.latency_flag},
        "prune": prune.summary if prune else None,
        "stages": {name: {"seconds": r.seconds, "cpu_seconds": r.cpu_seconds} for name, r in run.records.items()},
        "total_seconds": sum(r.seconds for r in run.records.values()),
        "total_cpu_seconds": sum(r.cpu_seconds for r in run.records.values()),
    }
    if sparse:
        summary["sparsity"] = {"gamma_before": gamma_stats(run.original_model()),
                               "gamma_after": gamma_stats(load_weights(sparse.checkpoint)[0])}
    return summary


def _widths(folder: Path, original: YOLOv5) -> tuple[list[str], list[int], list[int]]:
    """Per prunable BatchNorm (model order): name, width before and after pruning (from ``pruned.pt``)."""
    pruned = prunable_batchnorms(load_weights(folder / "pruned.pt")[0])
    names, before, after = [], [], []
    for name, bn in prunable_batchnorms(original).items():
        names.append(name.removeprefix("model.").removesuffix(".bn"))
        before.append(bn.num_features)
        after.append(pruned[name].num_features)
    return names, before, after


def _bars(ax, values: dict[str, list[float]], labels: list[str], fmt: str) -> None:
    x = np.arange(len(labels))
    for (model, heights), offset in zip(values.items(), (-0.2, 0.2)):
        bars = ax.bar(x + offset, heights, 0.4, label=model)
        ax.bar_label(bars, fmt=fmt, fontsize=7)
    ax.set_xticks(x, labels, fontsize=8)
    ax.legend(fontsize="small")


def _plot(run: FinishedRun, summary: dict) -> None:
    pruned, sparse = summary["prune"] is not None, run.result("sparsity")
    rows = 2 if pruned or sparse else 1
    fig = Figure(figsize=(14, 4.5 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows, 3)

    ax = fig.add_subplot(grid[0, 0])
    _bars(ax, {m: [summary["map"][k][m] for k in MAP_KEYS] for m in ("original", "final")},
          [label.replace(" ", "\n", 1) for label in MAP_KEYS.values()], "%.3f")
    sizes = summary["img_size"]
    ax.set_title(f"accuracy on {summary['split']} ({summary['images']} images; {sizes['original']} -> "
                 f"{sizes['final']} px)")

    ax = fig.add_subplot(grid[0, 1])
    keys = ("1 thread", "all cores")
    _bars(ax, {m: [summary["latency"][k][f"{m}_ms"] for k in keys] for m in ("original", "final")},
          [f"{k}\n{summary['latency'][k]['speedup']:.2f}x" for k in keys], "%.1f")
    ax.set_ylabel(f"{summary['runtime']} CPU latency, ms (median)")
    ax.set_title("speed (side by side)")

    ax = fig.add_subplot(grid[0, 2])
    steps = summary["plan"]["contributions"]
    x = np.arange(len(steps))
    bars = ax.bar(x, [s["speedup"] for s in steps], color="tab:green")
    ax.bar_label(bars, labels=[f"{s['speedup']:.2f}x\nmAP {s['map50']:.3f}" for s in steps], fontsize=7)
    ax.set_xticks(x, [f"{s['step']}\n{s['key']}" for s in steps], fontsize=7)
    ax.set_ylim(0, 1.15 * max(s["speedup"] for s in steps))  # room for the labels
    ax.set_ylabel("speed-up in the plan (selection split)")
    ax.set_title("what each dimension of the choice contributes")

    if pruned:
        ax = fig.add_subplot(grid[1, :2] if sparse else grid[1, :])
        names, width_before, width_after = _widths(run.dir, run.original_model())
        x = np.arange(len(names))
        ax.bar(x, width_before, color="lightgray", label="original")
        ax.bar(x, width_after, color="tab:blue", label="pruned")
        ax.set_xticks(x, names, rotation=90, fontsize=6)
        ax.set_ylabel("output channels")
        ax.set_title(f"per-layer widths (uniform cut {summary['prune']['fraction']:g}, round-to "
                     f"{summary['prune']['round_to']})")
        ax.legend(fontsize="small")
    if sparse:
        ax = fig.add_subplot(grid[1, 2] if pruned else grid[1, :])
        before, after = all_gammas(run.original_model()), all_gammas(load_weights(sparse.checkpoint)[0])
        bins = np.linspace(0, max(before.max(), after.max()) * 1.02, 60)
        ax.hist(before, bins=bins, histtype="step", lw=1.5, label="original")
        ax.hist(after, bins=bins, histtype="step", lw=1.5, label="after sparsity training")
        ax.set_xlabel("|γ| of prunable BatchNorm channels")
        ax.set_title("BN scales")
        ax.legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(run.dir / "report.png", buf.getvalue())


def _promise(plan: dict) -> list[str]:
    """What the plan promised about the choice: its winner's-curse-corrected estimate, and a latency flag."""
    lines = []
    e = plan["selection_estimate"]
    if e:
        low, high = e["interval"]
        lines.append(f"Selection estimate {100 * e['difference']:+.2f} points; corrected for choosing the fastest of "
                     f"many noisy candidates {100 * e['corrected']:+.2f} points ({e['level']:.0%} interval "
                     f"[{100 * low:+.2f}, {100 * high:+.2f}]): the change on the evaluation below is measured on "
                     "images nobody chose on.")
    if plan["latency_flag"]:
        lines.append(f"**Flag**: {plan['latency_flag']}.")
    return lines


def _markdown(summary: dict, layers: list[dict]) -> str:
    c, plan, sizes = summary["config"], summary["plan"], summary["img_size"]
    chosen = plan["chosen"]
    lines = [
        "# Compound slimming report", "",
        f"`{c['weights']}` ({c['classes'] or 'own classes'}) on `{c['data']}`.", "",
        f"Plan: {plan['message']} ({plan['scored']} candidates scored on `{c['select_split']}`, "
        f"{plan['cpu_seconds'] / 60:.1f} CPU minutes; every candidate in [{Path(plan['report']).name}]"
        f"(plan/{Path(plan['report']).name})).",
        f"Chosen: input {chosen['img_size']} px, channel cut {chosen['cut']:g}, {chosen['precision'].upper()}.",
        *_promise(plan), "",
        f"Evaluated once on `{summary['split']}` ({summary['images']} images), each model at its own size "
        f"(original {sizes['original']} px, slimmed {sizes['final']} px), conf {VAL_SETTINGS['conf_thres']}, IoU "
        f"{VAL_SETTINGS['iou_thres']}, multi-label.", "",
        "| | original | slimmed | change |", "|---|---:|---:|---:|",
    ]
    for key, label in MAP_KEYS.items():
        m = summary["map"][key]
        lines.append(f"| {label} | {m['original']:.4f} | {m['final']:.4f} | {m['change_points']:+.2f} points |")
    for key, lat in summary["latency"].items():
        lines.append(f"| latency {key}, ms | {lat['original_ms']:.1f} | {lat['final_ms']:.1f} | "
                     f"{lat['speedup']:.2f}x faster |")
    p = summary["prune"]
    if p:
        lines.append(f"| parameters | {p['params'][0]:,} | {p['params'][1]:,} | "
                     f"{p['params'][1] / p['params'][0]:.2f}x |")
    lines += [
        "", f"Runtime: {summary['runtime']}: the plan timed and quantized for it, and every figure here holds for it. "
        f"Latency: {summary['runtime']} CPU, static exports, both models side by side (round-robin medians of "
        f"{c['latency_runs']} runs) on {summary['machine']['model']} ({summary['machine']['cores']} cores).", "",
        "## What each dimension contributes (selection split)", "",
        "| step | candidate | latency | speed-up | mAP@0.5 | Δ points |", "|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {s['step']} | {s['key']} | {s['latency']:.3f} | {s['speedup']:.2f}x | {s['map50']:.4f} | "
              f"{100 * s['difference']:+.2f} |" for s in plan["contributions"]]
    if p:
        lines += ["", "## Channel cut", "",
                  f"Uniform fraction {p['fraction']:g} of every group ({p['removed']:.1%} of all channels), widths "
                  f"rounded to {p['round_to']}, reconstructed by least squares; GFLOPs @{sizes['final']} "
                  f"{p['gflops'][0]:.2f} -> {p['gflops'][1]:.2f}.", "",
                  "| # | type | widths before | widths after | params before | params after |",
                  "|---:|---|---|---|---:|---:|"]
        lines += [f"| {r['index']} | {r['type']} | {r['widths_before']} | {r['widths_after']} | "
                  f"{r['params_before']:,} | {r['params_after']:,} |" for r in layers]
    if "sparsity" in summary:
        gb, ga = summary["sparsity"]["gamma_before"], summary["sparsity"]["gamma_after"]
        lines += ["", f"Sparsity training: BN |γ| < 1e-2 {gb['small_gamma_fraction']:.1%} -> "
                  f"{ga['small_gamma_fraction']:.1%}."]
    lines += ["", "## Stages", "", "| stage | wall-clock s | CPU s |", "|---|---:|---:|"]
    lines += [f"| {name} | {s['seconds']:.0f} | {s['cpu_seconds']:.0f} |" for name, s in summary["stages"].items()]
    lines += [f"| total (before this report) | {summary['total_seconds']:.0f} | {summary['total_cpu_seconds']:.0f} |",
              "", "Files: `final.pt`, `final.onnx`, `eval.json`, `report.png`, `plan/`"
              + (", `pruned.pt`, `reconstructed.pt`, `prune.json`" if p else "")
              + (f", Ascend bundle `{c['deploy']}`" if c["deploy"] else "") + ".", ""]
    return "\n".join(lines)


def write_report(run: FinishedRun) -> dict:
    """Write ``report.md``, ``report.json`` and ``report.png`` into the run folder from the run's settings and
    finished stages; returns the headline numbers (``report``, ``map``, ``latency``)."""
    summary = _summary(run)
    prune = run.result("prune")
    layers = prune.layers if prune else []
    _plot(run, summary)
    atomic_write_text(run.dir / "report.json", json.dumps({**summary, "layers": layers}, indent=2) + "\n")
    atomic_write_text(run.dir / "report.md", _markdown(summary, layers))
    return {"report": str(run.dir / "report.md"), "map": summary["map"], "latency": summary["latency"]}
