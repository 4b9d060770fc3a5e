"""How much each channel matters: one score per output channel of every group (pluggable criteria).

A criterion scores the output channels of one Conv+BN unit; a coupled group (a residual stream) takes, per
channel, the **maximum** over its units. Max, not sum: a channel of a residual stream can only be removed
from all its units at once, so it should go only if *no* unit needs it, and the maximum keeps a group's
scores on the same scale as a single unit's, so one global threshold compares like with like (a sum would
inflate an n-unit stream about n-fold and make residual streams unprunable under a global threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

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


class ConsumerOutputImportance(Importance):
    """Data-driven, no labels: how much a channel adds to the outputs of the convs that read it.

    For channel c read by a conv with weights W, the diagonal estimate of the change of that conv's normalised
    output when c is removed is ``E[x_c²] · Σ_o s_o² ||W[o, c]||²`` over sampled images, with ``s_o = γ_o / σ_o``
    of the reader's BatchNorm (1 for Detect's convs). A group's score sums this over every reader of the channel:
    a residual stream over all the convs reading it, a Concat input at its offset, SPP(F) copies each with its
    own pooled statistics. ``images`` are paths or BGR arrays, letterboxed to ``img_size`` as ``eval`` does.
    """

    name = "output"

    def __init__(self, images: Sequence[str | Path | np.ndarray], img_size: int = 640, batch_size: int = 8) -> None:
        if not images:
            raise AscendSlimError("the output importance needs at least one image")
        self.images, self.img_size, self.batch_size = list(images), img_size, batch_size

    def _input_energy(self, model: YOLOv5, convs: Sequence[str]) -> dict[str, torch.Tensor]:
        """Mean square of every input channel of ``convs`` over the images."""
        from .. import core
        from ..imageio import read_image

        modules = dict(model.named_modules())
        sums = {name: torch.zeros(modules[name].in_channels, dtype=torch.float64) for name in convs}

        def hook(name: str):
            def record(module: nn.Module, args: tuple) -> None:
                sums[name] += args[0].double().pow(2).mean((2, 3)).sum(0)
            return record

        handles = [modules[name].register_forward_pre_hook(hook(name)) for name in convs]
        training = model.training
        try:
            model.eval()
            with torch.no_grad():
                for start in range(0, len(self.images), self.batch_size):
                    chunk = [p if isinstance(p, np.ndarray) else read_image(p)
                             for p in self.images[start:start + self.batch_size]]
                    tensor, _, _ = core.preprocess(chunk, (self.img_size, self.img_size), dtype=np.float32)
                    model(torch.from_numpy(np.ascontiguousarray(tensor)))
        finally:
            model.train(training)
            for h in handles:
                h.remove()
        return {name: s / len(self.images) for name, s in sums.items()}

    def __call__(self, model: YOLOv5, graph: ChannelGraph) -> list[torch.Tensor]:
        modules = dict(model.named_modules())
        energy = self._input_energy(model, list(graph.inputs))
        scores = [torch.zeros(g.width, dtype=torch.float64) for g in graph.groups]
        bns = {unit.conv: unit.bn for unit in graph.units.values()}
        with torch.no_grad():
            for conv, segments in graph.inputs.items():
                weight = modules[conv].weight.double()
                scale = torch.ones(weight.shape[0], dtype=torch.float64)
                if conv in bns:
                    bn = modules[bns[conv]]
                    scale = bn.weight.double() / (bn.running_var.double() + bn.eps).sqrt()
                contribution = energy[conv] * (scale[:, None, None, None] ** 2 * weight ** 2).sum((0, 2, 3))
                offset = 0
                for s in segments:
                    if s.group is not None:
                        scores[s.group] += contribution[offset:offset + s.width]
                    offset += s.width
        return [s.float() for s in scores]
