"""One call from a model to its channel-pruned copy: criterion, plan, surgery, and the record of what was done."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AscendSlimError
from ..model.yolo import YOLOv5
from .groups import build_graph
from .importance import Importance, get_importance
from .planner import LatencyRatio, PrunePlan, Thresholds, layer_table, plan_target_flops, plan_target_latency
from .surgery import kept_by_bn, prune_model


@dataclass
class PruneResult:
    """The pruned model (its ``history`` ends with ``record``), the plan, and the per-layer table."""

    model: YOLOv5
    plan: PrunePlan
    record: dict
    table: list[dict]


def prune_channels(model: YOLOv5, *, method: str | Importance = "slim", percent: float | None = None,
                   target_flops: float | None = None, target_latency: float | None = None, round_to: int = 1,
                   min_keep: float = 0.0, img_size: int = 640, fold_bias: bool = True, force: bool = False,
                   latency: LatencyRatio | None = None, latency_runs: int = 20, progress: bool = True) -> PruneResult:
    """Channel-prune ``model`` (not modified) by exactly one of ``percent``, ``target_flops``, ``target_latency``.

    ``method``: ``slim`` (BN |gamma|), ``l1`` or ``l2`` (filter norms), or any :class:`.Importance`. See
    :mod:`.planner` for the threshold rule, safety bound, ``min_keep``, ``round_to`` and ``force``, and
    :mod:`.surgery` for ``fold_bias``. ``target_latency`` uses the ``latency`` model (a
    :data:`~.planner.LatencyRatio`; default: onnxruntime on one thread, ``latency_runs`` rounds side by side with the
    original, :class:`~ascend_slim.report.latency.OnnxLatencyRatio`).
    The record lists the kept original channel indices of every BatchNorm by qualified name, the threshold,
    the safety bound, and parameters and GFLOPs at ``img_size`` before and after.
    """
    goals = {"percent": percent, "target_flops": target_flops, "target_latency": target_latency}
    given = [k for k, v in goals.items() if v is not None]
    if len(given) != 1:
        raise AscendSlimError(f"give exactly one of percent, target_flops, target_latency (got {given or 'none'})")
    graph = build_graph(model)
    importance = method if isinstance(method, Importance) else get_importance(method)
    thresholds = Thresholds(graph, importance(model, graph), round_to=round_to, min_keep=min_keep)
    if percent is not None:
        plan = thresholds.plan(thresholds.position(percent), force)
    elif target_flops is not None:
        plan = plan_target_flops(model, graph, thresholds, target_flops, img_size, force)
    elif latency is not None:
        plan = plan_target_latency(model, graph, thresholds, target_latency, latency, force, progress=progress)
    else:
        from ..report.latency import OnnxLatencyRatio

        with OnnxLatencyRatio(model, img_size, runs=latency_runs) as measured:
            plan = plan_target_latency(model, graph, thresholds, target_latency, measured, force, progress=progress)
    pruned = prune_model(model, graph, plan.keep, fold_bias=fold_bias)
    table = layer_table(model, pruned, img_size)
    totals = {key: [sum(r[f"{key}_before"] for r in table), sum(r[f"{key}_after"] for r in table)]
              for key in ("params", "gflops")}
    record = {"action": "prune", "method": importance.name, **plan.to_dict(), "fold_bias": fold_bias,
              "img_size": img_size, **totals, "kept": kept_by_bn(graph, plan.keep)}
    pruned.history.append(record)
    return PruneResult(pruned, plan, record, table)
