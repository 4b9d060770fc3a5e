"""How to cut: build the physically smaller model from kept channel indices, and the masked reference.

:func:`prune_model` writes the kept widths into a copy of the model's spec, builds it with
``YOLOv5.from_spec`` and copies the kept weights with 1-D index tensors (``index_select``), so a group that
keeps a single channel still has 4-D conv weights. Classes, anchors, strides and history carry over.

The **masked model** (:func:`mask_model`) is the original with gamma and beta of every removed channel set
to 0: those channels output SiLU(0) = 0 everywhere, so the pruned model built with ``fold_bias=False``
computes the very same heads.

**Bias folding** (``fold_bias=True``): a removed channel whose gamma is (nearly) 0 outputs the constant
SiLU(beta) — through residual adds, the sum of its units' constants; max-pools, Upsample and Concat keep a
constant. Each consumer conv then adds ``sum(weights over the kernel) * constant`` to every output; the fold
moves that into the consumer's BatchNorm running mean (conv+BN) or into its bias (Detect). Exact for 1x1
consumers; for kxk consumers exact on interior pixels (zero padding makes the border differ).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import AscendSlimError
from ..model.yolo import YOLOv5
from .correspondence import channel_correspondence
from .groups import ChannelGraph, Segment

BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def check_keep(graph: ChannelGraph, keep: Sequence[torch.Tensor]) -> None:
    """Every group keeps at least one of its channels, each index once (raises AscendSlimError otherwise)."""
    if len(keep) != len(graph.groups):
        raise AscendSlimError(f"kept indices for {len(keep)} groups, the model has {len(graph.groups)}")
    for group, idx in zip(graph.groups, keep):
        if idx.ndim != 1 or idx.numel() == 0 or idx.unique().numel() != idx.numel() \
                or int(idx.min()) < 0 or int(idx.max()) >= group.width:
            raise AscendSlimError(f"group of {group.units[0]}: kept indices must be 1..{group.width} distinct "
                                  "channels of the original (a layer would vanish)")


def pruned_spec(spec: dict, graph: ChannelGraph, keep: Sequence[torch.Tensor]) -> dict:
    """``spec`` with every unit's width set to its group's kept count."""
    spec = copy.deepcopy(spec)
    for unit in graph.units.values():
        node = spec["layers"][unit.layer]
        *path, last = unit.spec_path
        for key in path:
            node = node[key]
        node[last] = int(keep[graph.unit_group[unit.name]].numel())
    return spec


def kept_by_bn(graph: ChannelGraph, keep: Sequence[torch.Tensor]) -> dict[str, list[int]]:
    """Kept channel indices of the original per BatchNorm, by qualified module name (``model.2.cv1.bn``)."""
    return {unit.bn: keep[graph.unit_group[name]].tolist() for name, unit in graph.units.items()}


def _removed(width: int, kept: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(width, dtype=torch.bool)
    mask[kept] = False
    return mask


def mask_model(model: YOLOv5, graph: ChannelGraph, keep: Sequence[torch.Tensor], zero_beta: bool = True) -> YOLOv5:
    """A copy of ``model`` with gamma (and, with ``zero_beta``, beta) of every removed channel set to 0."""
    check_keep(graph, keep)
    masked = copy.deepcopy(model)
    modules = dict(masked.named_modules())
    with torch.no_grad():
        for name, unit in graph.units.items():
            removed = _removed(unit.width, keep[graph.unit_group[name]])
            bn = modules[unit.bn]
            bn.weight[removed] = 0
            if zero_beta:
                bn.bias[removed] = 0
    return masked


def _removed_constants(segments: list[Segment], keep: Sequence[torch.Tensor],
                       state: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per original input channel of a conv: the constant a removed channel outputs (SiLU(beta) summed over
    its residual sources), 0 for kept and fixed channels."""
    parts = []
    for s in segments:
        value = torch.zeros(s.width, dtype=torch.float64)
        if s.group is not None:
            removed = _removed(s.width, keep[s.group])
            for unit in s.sources:
                value[removed] += F.silu(state[f"{unit}.bn.bias"].double())[removed]
        parts.append(value)
    return torch.cat(parts)


def prune_model(model: YOLOv5, graph: ChannelGraph, keep: Sequence[torch.Tensor], fold_bias: bool = True) -> YOLOv5:
    """A new, physically smaller model keeping ``keep[g]`` (original indices) of every group ``g``.

    ``graph`` must be :func:`~.groups.build_graph` of ``model``. ``history`` is copied unchanged (the caller
    appends its record).
    """
    check_keep(graph, keep)
    keep = [k.long().sort().values for k in keep]
    spec = pruned_spec(model.spec, graph, keep)
    with torch.device("meta"):  # no initialisation: every tensor is loaded below
        pruned = YOLOv5.from_spec(spec)
    src = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    for conv, corr in channel_correspondence(graph, keep).items():
        kept_rows = src[f"{conv}.weight"].index_select(0, corr.out_index)  # every input: removed ones fold
        state[f"{conv}.weight"] = corr.slice(src[f"{conv}.weight"])
        constants = _removed_constants(graph.inputs[conv], keep, src) if fold_bias else None
        shift = kept_rows.sum((2, 3)).double() @ constants if constants is not None and constants.any() else None
        if corr.bn is not None:
            for key in BN_TENSORS:
                state[f"{corr.bn}.{key}"] = src[f"{corr.bn}.{key}"].index_select(0, corr.out_index)
            state[f"{corr.bn}.num_batches_tracked"] = src[f"{corr.bn}.num_batches_tracked"]
            if shift is not None:  # BN(z + shift; mean) == BN(z; mean - shift)
                state[f"{corr.bn}.running_mean"] = (state[f"{corr.bn}.running_mean"].double() - shift).float()
        else:
            bias = src[f"{conv}.bias"]
            state[f"{conv}.bias"] = bias if shift is None else (bias.double() + shift).to(bias.dtype)
    target = pruned.state_dict()
    for key, value in target.items():  # everything not channel-indexed (Detect anchors) is copied as is
        if key not in state:
            if src[key].shape != value.shape:
                raise AscendSlimError(f"pruning left {key} unhandled ({tuple(src[key].shape)} -> {tuple(value.shape)})")
            state[key] = src[key]
    pruned = pruned.to_empty(device=next(model.parameters()).device)
    pruned.load_state_dict(state)
    pruned.history = copy.deepcopy(model.history)
    return pruned.train(model.training)
