"""How much each channel matters: one score per output channel of every group (pluggable criteria).

A criterion scores the output channels of one Conv+BN unit; a coupled group (a residual stream) takes, per
channel, the **maximum** over its units. Max, not sum: a channel of a residual stream can only be removed
from all its units at once, so it should go only if *no* unit needs it, and the maximum keeps a group's
scores on the same scale as a single unit's, so one global threshold compares like with like (a sum would
inflate an n-unit stream about n-fold and make residual streams unprunable under a global threshold).
"""

from __future__ import annotations

import torch

from ..errors import AscendSlimError
from ..model.common import Conv
from ..model.yolo import YOLOv5
from .groups import ChannelGraph


class Importance:
    """A pruning criterion: ``unit_scores`` rates one unit's output channels (higher = more important)."""

    name = "importance"

    def unit_scores(self, block: Conv) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, model: YOLOv5, graph: ChannelGraph) -> list[torch.Tensor]:
        """Per group (``graph.groups`` order), a float tensor of ``group.width`` channel scores."""
        modules = dict(model.named_modules())
        with torch.no_grad():
            return [torch.stack([self.unit_scores(modules[u]).detach().float().cpu() for u in g.units]).amax(0)
                    for g in graph.groups]


class BNScaleImportance(Importance):
    """Network slimming: |gamma| of the unit's BatchNorm (sparsity training drives unneeded ones to 0)."""

    name = "slim"

    def unit_scores(self, block: Conv) -> torch.Tensor:
        return block.bn.weight.abs()


class FilterNormImportance(Importance):
    """Lp norm of each output filter of the unit's conv (``p=1``: Li et al., Pruning Filters)."""

    def __init__(self, p: int = 1) -> None:
        self.p = p
        self.name = f"l{p}"

    def unit_scores(self, block: Conv) -> torch.Tensor:
        return block.conv.weight.flatten(1).norm(p=self.p, dim=1)


CRITERIA = {"slim": BNScaleImportance, "l1": lambda: FilterNormImportance(1), "l2": lambda: FilterNormImportance(2)}


def get_importance(method: str) -> Importance:
    """The criterion called ``method`` (``slim``, ``l1`` or ``l2``)."""
    if method not in CRITERIA:
        raise AscendSlimError(f"unknown channel-importance method {method!r}: choose one of {', '.join(CRITERIA)}")
    return CRITERIA[method]()
