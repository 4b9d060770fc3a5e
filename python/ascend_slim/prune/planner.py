"""How much to cut: kept channels per group from a global threshold, a FLOPs target or a latency target.

Threshold rule (network slimming as in midasklr/yolov5prune): all group channel scores go into one sorted
vector of N values; ``percent`` p gives the threshold ``sorted[int(N * p)]`` and a group keeps its channels
with score >= threshold. The **safety bound** is the smallest per-group maximum score: a threshold above it
would empty a group; the largest safe percent is the bound's position in the sorted vector over N. A request
above it is refused unless ``force`` (then such a group keeps its best channel). ``min_keep`` r keeps at least
ceil(r * width) per group; ``round_to`` m rounds each kept count *up* to a multiple of m (at least m, at most
the width), keeping the top channels by score. Kept indices are ascending.

``target_flops`` / ``target_latency`` bisect over the threshold position for the least pruning whose FLOPs
ratio (counted at the image size) or latency ratio (a :data:`LatencyRatio` function passed in, e.g. the
measured onnxruntime one of :mod:`ascend_slim.report.latency`) is at or below the target.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from tqdm import tqdm

from ..errors import AscendSlimError
from ..model.cost import conv_macs, conv_output_sizes, model_cost
from ..model.yolo import YOLOv5
from .groups import ChannelGraph
from .surgery import prune_model


@dataclass
class PrunePlan:
    """Kept channels per group (original indices, ascending) and how they were chosen."""

    keep: list[torch.Tensor]
    percent: float
    threshold: float
    safety_bound: float
    max_safe_percent: float
    round_to: int = 1
    min_keep: float = 0.0
    forced: bool = False  # threshold above the safety bound: some group kept only its floor (1, min-keep, round-to)
    reached: dict = field(default_factory=dict)  # what a FLOPs/latency target reached

    def to_dict(self) -> dict:
        return {"percent": self.percent, "threshold": self.threshold, "safety_bound": self.safety_bound,
                "max_safe_percent": self.max_safe_percent, "round_to": self.round_to, "min_keep": self.min_keep,
                "forced": self.forced, **({"reached": self.reached} if self.reached else {})}


class Thresholds:
    """The sorted global score vector of a model's groups, its safety bound, and plans at any position."""

    def __init__(self, graph: ChannelGraph, scores: Sequence[torch.Tensor], round_to: int = 1,
                 min_keep: float = 0.0) -> None:
        if not isinstance(round_to, int) or round_to < 1:
            raise AscendSlimError(f"round-to must be a positive integer, got {round_to!r}")
        narrow = min(graph.groups, key=lambda g: g.width)
        if round_to > narrow.width:
            raise AscendSlimError(f"round-to {round_to} exceeds the width of {narrow.units[0]} ({narrow.width} "
                                  "channels): choose a smaller multiple")
        if not 0.0 <= min_keep <= 1.0:
            raise AscendSlimError(f"min-keep must lie in [0, 1], got {min_keep}")
        self.graph, self.scores = graph, [s.float() for s in scores]
        self.round_to, self.min_keep = round_to, min_keep
        self.sorted = torch.cat(self.scores).sort().values
        self.safety_bound = float(min(s.max() for s in self.scores))
        # thresholds at positions up to here keep every group non-empty (the last index holding the bound)
        self.last_safe = int(torch.searchsorted(self.sorted, torch.tensor(self.safety_bound), right=True)) - 1

    @property
    def n(self) -> int:
        return int(self.sorted.numel())

    @property
    def max_safe_percent(self) -> float:
        return self.last_safe / self.n

    def position(self, percent: float) -> int:
        if not 0.0 <= percent < 1.0:
            raise AscendSlimError(f"prune percent must lie in [0, 1), got {percent}")
        return int(self.n * percent)

    def kept_count(self, score: torch.Tensor, threshold: float) -> int:
        """Channels at or above ``threshold``, at least one and ``min_keep``, rounded up to ``round_to``."""
        width = score.numel()
        k = max(int((score >= threshold).sum()), math.ceil(self.min_keep * width), 1)
        return min(width, math.ceil(k / self.round_to) * self.round_to)

    def plan(self, position: int, force: bool = False) -> PrunePlan:
        """Keep per group at threshold ``sorted[position]``; refuses to empty a group unless ``force``."""
        threshold = float(self.sorted[position])
        if threshold > self.safety_bound and not force:
            g = min(self.graph.groups, key=lambda g: float(self.scores[g.index].max()))
            raise AscendSlimError(
                f"prune percent {position / self.n:.3f} (threshold {threshold:.4g}) would remove every channel of "
                f"{g.units[0]}: the safety bound is {self.safety_bound:.4g}, the largest safe percent "
                f"{self.max_safe_percent:.3f}; prune less, sparsity-train first, or force")
        keep = []
        for score in self.scores:
            order = torch.sort(score, descending=True, stable=True).indices
            keep.append(order[:self.kept_count(score, threshold)].sort().values)
        return PrunePlan(keep, position / self.n, threshold, self.safety_bound, self.max_safe_percent,
                         self.round_to, self.min_keep, forced=threshold > self.safety_bound)

    def highest_position(self, force: bool) -> int:
        return self.n - 1 if force else self.last_safe


def _least_pruning(thresholds: Thresholds, ratio: Callable[[int], float], target: float, force: bool, what: str,
                   resolution: int = 1) -> int:
    """The smallest threshold position whose ``ratio`` (pruned/original, 1 at position 0, falling as the
    position grows) is at most ``target``, by bisection down to ``resolution`` positions."""
    if not 0.0 < target <= 1.0:
        raise AscendSlimError(f"target {what} ratio must lie in (0, 1], got {target}")
    if target == 1.0:
        return 0
    lo, hi = 0, thresholds.highest_position(force)
    if ratio(hi) > target:
        limit = "" if force else " (the safety bound; force goes further)"
        raise AscendSlimError(f"target {what} ratio {target} cannot be met: pruning up to percent "
                              f"{hi / thresholds.n:.3f} reaches {ratio(hi):.3f}{limit}")
    while hi - lo > resolution:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ratio(mid) <= target else (mid, hi)
    return hi


def macs_pricer(model: YOLOv5, graph: ChannelGraph, img_size: int = 640) -> Callable[[Sequence[torch.Tensor]], int]:
    """A function giving the conv MACs at ``img_size`` of ``model`` pruned to a kept set, without building it
    (pruning keeps every feature map's size; channel counts come from the graph's segments)."""
    sizes = conv_output_sizes(model, img_size)
    modules = dict(model.named_modules())
    out_group = {unit.conv: graph.unit_group[name] for name, unit in graph.units.items()}

    def macs(keep: Sequence[torch.Tensor]) -> int:
        total = 0
        for conv, segments in graph.inputs.items():
            c_in = sum(s.width if s.group is None else keep[s.group].numel() for s in segments)
            c_out = keep[out_group[conv]].numel() if conv in out_group else None
            total += conv_macs(modules[conv], sizes[conv], c_in, c_out)
        return total

    return macs


def plan_target_flops(model: YOLOv5, graph: ChannelGraph, thresholds: Thresholds, target: float,
                      img_size: int = 640, force: bool = False) -> PrunePlan:
    """The least pruning whose FLOPs at ``img_size`` are at most ``target`` x the original's."""
    macs = macs_pricer(model, graph, img_size)
    base = macs([torch.arange(g.width) for g in graph.groups])

    @functools.cache
    def ratio(position: int) -> float:
        return macs(thresholds.plan(position, force).keep) / base

    position = _least_pruning(thresholds, ratio, target, force, "FLOPs")
    return replace(thresholds.plan(position, force), reached={"target_flops": target, "flops_ratio": ratio(position)})


LatencyRatio = Callable[[YOLOv5], float]
"""A latency model for :func:`plan_target_latency`: a pruned candidate -> its latency over the original's (1 for
the original). :class:`ascend_slim.report.latency.OnnxLatencyRatio` measures it with onnxruntime; a FLOPs or
Ascend cost model is any such function."""


def plan_target_latency(model: YOLOv5, graph: ChannelGraph, thresholds: Thresholds, target: float,
                        latency: LatencyRatio, force: bool = False, resolution: float = 0.005,
                        progress: bool = True) -> PrunePlan:
    """The least pruning whose ``latency`` ratio is at most ``target``. Candidates are ``model`` pruned to a
    threshold position (without bias folding). ``reached`` records every ratio asked for and the latency model's
    ``settings`` (a dict attribute), when it has one.

    Bisection stops when the percent bracket is narrower than ``resolution``; a measured latency is noisy, so
    the plan is the smallest position *measured* at or below the target.
    """
    measured: dict[int, float] = {}
    with tqdm(desc="latency bisection", unit="step", disable=not progress) as bar:
        def ratio(position: int) -> float:
            if position not in measured:
                measured[position] = float(latency(prune_model(model, graph, thresholds.plan(position, force).keep,
                                                               fold_bias=False)))
                bar.set_postfix(percent=f"{position / thresholds.n:.3f}", ratio=f"{measured[position]:.3f}")
                bar.update()
            return measured[position]

        position = _least_pruning(thresholds, ratio, target, force, "latency",
                                  resolution=max(1, int(resolution * thresholds.n)))
    reached = {"target_latency": target, "latency_ratio": measured.get(position, 1.0),
               **getattr(latency, "settings", {}),
               "measured": {f"{p / thresholds.n:.4f}": r for p, r in sorted(measured.items())}}
    return replace(thresholds.plan(position, force), reached=reached)


def _widths(layer: dict) -> str:
    """A layer's output widths in one cell: ``c2``, or ``cv1/cv2/cv3 [bottleneck hidden/out ...]``."""
    t = layer["type"]
    if t in ("Conv", "Focus"):
        return str(layer["c2"])
    if t == "C3":
        inner = " ".join(f"{b['cv1']}/{b['cv2']}" for b in layer["m"])
        return f"{layer['cv1']}/{layer['cv2']}/{layer['cv3']} [{inner}]"
    if t in ("SPP", "SPPF"):
        return f"{layer['cv1']}/{layer['cv2']}"
    return ""


def layer_table(before: YOLOv5, after: YOLOv5, img_size: int = 640) -> list[dict]:
    """Per layer: type, widths, parameters and GFLOPs before and after pruning."""
    cost_b, cost_a = model_cost(before, img_size), model_cost(after, img_size)
    rows = []
    for lb, la, cb, ca in zip(before.spec["layers"], after.spec["layers"], cost_b.layers, cost_a.layers):
        rows.append({"index": cb.index, "type": cb.type, "widths_before": _widths(lb), "widths_after": _widths(la),
                     "params_before": cb.params, "params_after": ca.params,
                     "gflops_before": cb.gflops, "gflops_after": ca.gflops})
    return rows


def format_layer_table(rows: list[dict]) -> str:
    """The per-layer table as aligned text, with a total line."""
    total = {"index": "", "type": "total", "widths_before": "", "widths_after": "",
             **{key: sum(r[key] for r in rows) for key in ("params_before", "params_after", "gflops_before",
                                                           "gflops_after")}}
    cells = [["#", "type", "widths before", "widths after", "params before", "params after", "GFLOPs before",
              "GFLOPs after"]]
    for r in [*rows, total]:
        cells.append([str(r["index"]), r["type"], r["widths_before"], r["widths_after"], f"{r['params_before']:,}",
                      f"{r['params_after']:,}", f"{r['gflops_before']:.3f}", f"{r['gflops_after']:.3f}"])
    sizes = [max(len(row[c]) for row in cells) for c in range(len(cells[0]))]
    left = {1, 2, 3}
    lines = ["  ".join(cell.ljust(n) if c in left else cell.rjust(n) for c, (cell, n) in enumerate(zip(row, sizes)))
             for row in cells]
    rule = "-" * len(lines[0])
    return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])
