"""The Pareto report of a compound search: a PNG of selection mAP against latency, and the table as Markdown and
JSON (all written atomically)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..fileio import atomic_write_bytes, atomic_write_text
from .candidates import Candidate
from .objective import INTERVAL_LEVEL
from .staged import SearchResult

_MARKERS = {"fp32": "o", "int8": "^"}


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def measurement_rows(result: SearchResult) -> list[dict[str, Any]]:
    """One row per scored candidate, fastest first: what the table, the JSON and the plot show."""
    objective = result.objective
    frontier = {m.candidate for m in result.plan.frontier}
    chosen = result.plan.chosen.candidate if result.plan.chosen else None
    retimed = result.plan.retimed or {}
    rows = []
    for m in sorted(result.measurements, key=lambda m: (m.latency, -m.map50, m.candidate)):
        low, high = m.delta.interval(INTERVAL_LEVEL)
        rows.append({
            "key": m.candidate.key, **m.candidate.to_dict(), "stage": m.stage,
            "latency": m.latency, "latency_estimated": m.latency_estimated, "speedup": m.speedup,
            "latency_interval": [retimed[m.candidate].low, retimed[m.candidate].high] if m.candidate in retimed
            else None,
            "map50": m.map50, "difference": m.delta.difference, "interval": [low, high],
            "reliable": m.delta.reliable,
            "lower_bound": objective.floor_bound(m), "meets_floor": objective.meets_floor(m),
            "within_budget": objective.within_budget(m), "frontier": m.candidate in frontier,
            "chosen": m.candidate == chosen, "original": m.candidate == result.original.candidate,
            "cpu_seconds": m.cpu_seconds,
        })
    return rows


def contributions(result: SearchResult) -> list[dict[str, Any]]:
    """What each dimension of the chosen candidate contributes: the original, then its input size alone, + the
    channel cut, + INT8 (steps the choice does not use are left out; every step was scored, as a derived
    candidate is only scored after its parent). Empty without a chosen candidate."""
    chosen = result.plan.chosen
    if chosen is None:
        return []
    c = chosen.candidate
    steps = [("original", result.original.candidate), ("input size", Candidate(c.img_size)),
             ("+ channel cut", Candidate(c.img_size, c.cut)), ("+ INT8", c)]
    by_candidate = {m.candidate: m for m in result.measurements}
    rows, seen = [], set()
    for label, candidate in steps:
        if candidate in seen:
            continue
        seen.add(candidate)
        m = by_candidate[candidate]
        rows.append({"step": label, "key": candidate.key, "latency": m.latency, "speedup": m.speedup,
                     "map50": m.map50, "difference": m.delta.difference})
    return rows


def size_curve(result: SearchResult) -> list[dict[str, Any]]:
    """Selection accuracy against speed over the input sizes alone (uncut FP32), largest size first: the curve that
    shows whether this data set's objects survive a smaller input."""
    rows = []
    for m in sorted((m for m in result.measurements if not m.candidate.cut and m.candidate.precision == "fp32"),
                    key=lambda m: -m.candidate.img_size):
        low, high = m.delta.interval(INTERVAL_LEVEL)
        rows.append({"img_size": m.candidate.img_size, "speedup": m.speedup, "map50": m.map50,
                     "difference": m.delta.difference, "interval": [low, high]})
    return rows


def _headline(result: SearchResult) -> list[str]:
    estimate = any(m.latency_estimated for m in result.measurements)
    plan = result.plan
    lines = [
        f"- objective: {result.objective.describe()}",
        f"- result: {plan.message}",
        f"- original: {result.original.candidate.key}, selection mAP@0.5 {result.original.map50:.4f}",
        f"- scored {len(result.measurements)} candidates ({result.scored_now} in this run), "
        f"{result.cpu_seconds / 60:.1f} CPU minutes in all; {len(result.skipped)} timed but not scored",
        f"- latency: {'an estimate (FLOPs model)' if estimate else 'measured'}, as a ratio to the original",
    ]
    if plan.chosen is not None and plan.retimed and plan.chosen.candidate in plan.retimed:
        timed = plan.retimed[plan.chosen.candidate]
        lines.append(f"- the chosen latency re-timed side by side with {len(plan.retimed) - 1} frontier neighbours, "
                     f"{timed.runs} rounds: {timed.ratio:.3f} ({1 / timed.ratio:.2f}x), {INTERVAL_LEVEL:.0%} interval "
                     f"[{timed.low:.3f}, {timed.high:.3f}]")
    if plan.latency_flag:
        lines.append(f"- **flag**: {plan.latency_flag}")
    if plan.estimate is not None:
        e = plan.estimate
        low, high = e.interval
        lines.append(f"- the chosen one's selection estimate {_points(e.difference)} points is optimistic (it won "
                     f"against noisy rivals): corrected for that, {_points(e.corrected)} points "
                     f"({INTERVAL_LEVEL:.0%} interval [{_points(low)}, {_points(high)}]; optimism "
                     f"{100 * e.optimism:.2f} points, estimated by replaying the choice in every bootstrap resample; "
                     f"another candidate won in {e.switched:.0%} of them). The correction sees only the scored "
                     "candidates and is itself a noisy estimate.")
    if not all(m.delta.reliable for m in result.measurements):
        lines.append("- intervals marked * rest on too few images to be trusted")
    return lines + _data_use(result)


def _data_use(result: SearchResult) -> list[str]:
    use = result.data_use or {}
    if not use:
        return []
    lines = [f"- images: {use.get('summary', '')}"]
    for fold in use.get("folds", []):
        lines.append(f"  - fold {fold['fold']}: scored {len(fold['scored'])} selection images "
                     f"({', '.join(fold['scored'][:3])}, ...), fitted on {len(fold['fitted'])} others "
                     f"({', '.join(fold['fitted'][:3])}, ...); the full lists are in plan.json")
    return lines


def markdown_table(result: SearchResult) -> str:
    """The report as Markdown: headline, then the table (differences and bounds in mAP points)."""
    level = f"{INTERVAL_LEVEL:.0%}"
    floor = "floor statistic" if result.objective.confidence == 0.5 else \
        f"{result.objective.confidence:.0%} lower bound"
    lines = ["# Compound slimming plan", "", *_headline(result), "",
             f"| candidate | size | cut | precision | stage | latency | re-timed {level} interval | speedup | mAP@0.5 "
             f"| Δ points | {level} interval | {floor} | frontier | CPU s |",
             "|---|---:|---:|---|---|---:|---|---:|---:|---:|---|---:|:-:|---:|"]
    for row in measurement_rows(result):
        mark = " **chosen**" if row["chosen"] else (" (original)" if row["original"] else "")
        low, high = row["interval"]
        timed = "[{:.3f}, {:.3f}]".format(*row["latency_interval"]) if row["latency_interval"] else ""
        lines.append(
            f"| {row['key']}{mark} | {row['img_size']} | {row['cut']:.3g} | {row['precision']} | {row['stage']} "
            f"| {row['latency']:.3f}{'*' if row['latency_estimated'] else ''} | {timed} | {row['speedup']:.2f}x "
            f"| {row['map50']:.4f} | {_points(row['difference'])} | [{_points(low)}, {_points(high)}]"
            f"{'' if row['reliable'] else '*'} "
            f"| {_points(row['lower_bound'])} | {'yes' if row['frontier'] else ''} | {row['cpu_seconds']:.1f} |")
    steps = contributions(result)
    if steps:
        lines += ["", "What each dimension of the choice contributes:", "",
                  "| step | candidate | latency | speedup | mAP@0.5 | Δ points |", "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {r['step']} | {r['key']} | {r['latency']:.3f} | {r['speedup']:.2f}x | {r['map50']:.4f} "
                  f"| {_points(r['difference'])} |" for r in steps]
    if result.skipped:
        lines += ["", "Timed but not scored (they could not change the choice):", ""]
        lines += [f"- {c.key}: {reason}" for c, reason in result.skipped]
    return "\n".join(lines) + "\n"


def plot_pareto(result: SearchResult, path: str | Path, size: tuple[int, int] = (1000, 650)) -> Path:
    """Selection mAP against latency ratio for every scored candidate: marker by precision, colour by cut, size
    written beside each, the bootstrap interval as an error bar, the frontier drawn, original and choice marked."""
    fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.1, 0.7, 0.82))
    cuts = sorted({m.candidate.cut for m in result.measurements})
    cmap = colormaps["viridis"]
    colours = {cut: cmap(i / max(1, len(cuts) - 1)) for i, cut in enumerate(cuts)}
    original_map = result.original.map50
    confidence = INTERVAL_LEVEL
    for m in result.measurements:
        c = m.candidate
        low, high = m.delta.interval(confidence)
        ax.errorbar(m.latency, m.map50, yerr=[[m.map50 - original_map - low], [original_map + high - m.map50]],
                    fmt="none", ecolor=colours[c.cut], alpha=0.35, capsize=2)
        ax.scatter(m.latency, m.map50, marker=_MARKERS[c.precision], color=colours[c.cut], s=40, zorder=3)
        ax.annotate(str(c.img_size), (m.latency, m.map50), textcoords="offset points", xytext=(4, 4), fontsize=7)
    frontier = result.plan.frontier
    ax.step([m.latency for m in frontier], [m.map50 for m in frontier], where="post", color="tab:red", lw=1.2,
            label="Pareto frontier")
    ax.scatter(result.original.latency, original_map, s=200, facecolors="none", edgecolors="black", lw=1.5,
               marker="s", zorder=4, label="original")
    if result.plan.chosen is not None:
        chosen = result.plan.chosen
        ax.scatter(chosen.latency, chosen.map50, s=350, marker="*", facecolors="none", edgecolors="tab:red", lw=1.5,
                   zorder=5, label="chosen")
    objective = result.objective
    if objective.target_latency is not None:
        ax.axvline(objective.target_latency, color="grey", ls="--", lw=1, label="latency target")
    if objective.max_drop is not None:
        ax.axhline(original_map - objective.max_drop / 100, color="grey", ls=":", lw=1,
                   label=f"floor: original − {objective.max_drop:g} pt")
    precisions = {m.candidate.precision for m in result.measurements}
    for precision, marker in _MARKERS.items():
        if precision in precisions:
            ax.scatter([], [], marker=marker, color="grey", label=precision)
    for cut, colour in colours.items():
        ax.scatter([], [], marker="o", color=colour, label=f"cut {cut:.3g}" if cut else "no cut")
    estimate = " (estimate)" if any(m.latency_estimated for m in result.measurements) else ""
    ax.set_xlabel(f"latency / original{estimate}   (lower is faster)")
    ax.set_ylabel("selection mAP@0.5 (VOC07)")
    ax.set_title(f"compound plan: {len(result.measurements)} candidates; error bars: paired bootstrap "
                 f"{confidence:.0%} interval", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_report(result: SearchResult, folder: str | Path, stem: str = "plan") -> dict[str, Path]:
    """``<stem>.png``, ``<stem>.md`` and ``<stem>.json`` in ``folder``; returns their paths by kind."""
    folder = Path(folder)
    paths = {"png": folder / f"{stem}.png", "markdown": folder / f"{stem}.md", "json": folder / f"{stem}.json"}
    plot_pareto(result, paths["png"])
    atomic_write_text(paths["markdown"], markdown_table(result))
    data = {**result.to_dict(), "candidates": measurement_rows(result), "contributions": contributions(result)}
    atomic_write_text(paths["json"], json.dumps(data, indent=1) + "\n")
    return paths
