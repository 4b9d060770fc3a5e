"""How much to cut, layer by layer: the same fraction of every group, the least important channels inside each.

One global threshold compares scores across layers and guts single layers (on the official yolov5n, a 10 %
global |gamma| cut leaves one bottleneck 8 of 64 channels). A **uniform** plan removes ``round(fraction *
width)`` channels from every group, ranked by importance inside the group; ``round_to`` m rounds each kept
count to the *nearest* multiple of m (at least m, at most the width: on a 16-wide group a 10 % cut rounds to
none), and ``min_keep`` r keeps at least ``ceil(r * width)``. :func:`plan_uniform_target` finds the least
fraction whose cost ratio (FLOPs, a latency model, a measured latency: any function of the kept sets) is at or
below a target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from ..errors import AscendSlimError
from .groups import ChannelGraph
from .planner import PrunePlan, Thresholds


def uniform_count(width: int, fraction: float, round_to: int = 1, min_keep: float = 0.0) -> int:
    """Channels a ``width``-wide group keeps when ``fraction`` of it is cut (rounding rules in the module doc)."""
    kept = width - round(fraction * width)
    kept = round_to * max(1, round(kept / round_to))
    return min(width, max(kept, math.ceil(min_keep * width), 1))


def plan_uniform(graph: ChannelGraph, scores: Sequence[torch.Tensor], fraction: float, round_to: int = 1,
                 min_keep: float = 0.0) -> PrunePlan:
    """Keep the top-scored channels of every group, ``fraction`` of each cut (see the module doc).

    ``scores`` are per-group channel importances (:mod:`.importance`). The plan's ``percent`` is the fraction
    of all channels actually removed, ``threshold`` the lowest score any group keeps, and ``reached`` records
    the uniform fraction asked for; ``safety_bound``/``max_safe_percent`` describe ``scores`` as for a
    global-threshold plan (a uniform plan never empties a group).
    """
    if not 0.0 <= fraction < 1.0:
        raise AscendSlimError(f"uniform prune fraction must lie in [0, 1), got {fraction}")
    thresholds = Thresholds(graph, scores, round_to=round_to, min_keep=min_keep)  # validates round_to, min_keep
    keep = []
    for score in thresholds.scores:
        order = torch.sort(score, descending=True, stable=True).indices
        keep.append(order[:uniform_count(score.numel(), fraction, round_to, min_keep)].sort().values)
    total = sum(g.width for g in graph.groups)
    removed = total - sum(k.numel() for k in keep)
    lowest = min(float(s[k].min()) for s, k in zip(thresholds.scores, keep))
    return PrunePlan(keep, removed / total, lowest, thresholds.safety_bound, thresholds.max_safe_percent, round_to,
                     min_keep, reached={"uniform_fraction": fraction})


def plan_uniform_target(graph: ChannelGraph, scores: Sequence[torch.Tensor],
                        cost: Callable[[list[torch.Tensor]], float], target: float, round_to: int = 1,
                        min_keep: float = 0.0, resolution: float = 0.005, max_fraction: float = 0.95) -> PrunePlan:
    """The least uniform fraction whose ``cost(keep)`` ratio to the unpruned ``cost`` is at most ``target``.

    ``cost`` is any function of the kept index sets that falls as channels go (conv MACs via
    :func:`.planner.macs_pricer`, a latency model, a measured latency); the fraction is bisected down to
    ``resolution``. ``reached`` records the target, the fraction and the ratio reached.
    """
    if not 0.0 < target <= 1.0:
        raise AscendSlimError(f"target cost ratio must lie in (0, 1], got {target}")
    base = cost([torch.arange(g.width) for g in graph.groups])
    ratios: dict[float, float] = {}

    def ratio(fraction: float) -> float:
        if fraction not in ratios:
            ratios[fraction] = cost(plan_uniform(graph, scores, fraction, round_to, min_keep).keep) / base
        return ratios[fraction]

    lo, hi = 0.0, max_fraction
    if ratio(hi) > target:
        raise AscendSlimError(f"target cost ratio {target} cannot be met: a uniform cut of {hi:.0%} reaches "
                              f"{ratio(hi):.3f}")
    while hi - lo > resolution:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ratio(mid) <= target else (mid, hi)
    return replace(plan_uniform(graph, scores, hi, round_to, min_keep),
                   reached={"uniform_fraction": hi, "target": target, "ratio": ratio(hi)})


def plan_removed(graph: ChannelGraph, scores: Sequence[torch.Tensor], fraction: float, round_to: int = 1,
                 min_keep: float = 0.0, resolution: float = 0.002) -> PrunePlan:
    """A cut level that survives rounding: the least uniform fraction whose plan, widths rounded to ``round_to``,
    removes at least ``fraction`` of all channels (rounding to the nearest multiple keeps a 16-wide group whole
    at a 10 % cut, so the uniform fraction asked for must grow until the channels really removed reach the
    level). ``reached`` records the level, the uniform fraction and the fraction removed (``percent``).
    Raises AscendSlimError when even a 95 % uniform cut removes less."""
    if not 0.0 <= fraction < 1.0:
        raise AscendSlimError(f"cut level must lie in [0, 1), got {fraction}")
    if fraction == 0.0:
        return plan_uniform(graph, scores, 0.0, round_to, min_keep)
    total = sum(g.width for g in graph.groups)
    kept_ratio = plan_uniform_target(graph, scores, lambda keep: sum(k.numel() for k in keep) / total,
                                     1.0 - fraction, round_to, min_keep, resolution)
    return replace(kept_ratio, reached={"level": fraction, "uniform_fraction": kept_ratio.reached["uniform_fraction"],
                                        "removed": kept_ratio.percent})
