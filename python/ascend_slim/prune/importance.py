"""How much each channel matters: one score per output channel of every group (pluggable criteria).

A criterion scores the output channels of one Conv+BN unit; a coupled group (a residual stream) takes, per
channel, the **maximum** over its units. Max, not sum: a channel of a residual stream can only be removed
from all its units at once, so it should go only if *no* unit needs it, and the maximum keeps a group's
scores on the same scale as a single unit's, so one global threshold compares like with like (a sum would
inflate an n-unit stream about n-fold and make residual streams unprunable under a global threshold).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.unlabelled import letterboxed_batches
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
                for images in letterboxed_batches(self.images, self.img_size, self.batch_size):
                    model(images)
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


Batch = tuple[torch.Tensor, torch.Tensor]


def pseudo_labels(model: YOLOv5, images: torch.Tensor, conf_thres: float = 0.25,
                  iou_thres: float = 0.45) -> torch.Tensor:
    """``model``'s own post-NMS detections on ``images`` ``[B, 3, H, W]`` as training targets: ``[M, 6]`` rows
    ``[image_index, class, cx, cy, w, h]`` normalised to the input size (as ``train.loss.YoloLoss`` takes them)."""
    from .. import core

    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            decoded = model.decode(model(images)).float().numpy()
    finally:
        model.train(training)
    height, width = images.shape[2:]
    rows = []
    for i, dets in enumerate(core.postprocess_decoded(decoded, conf_thres=conf_thres, iou_thres=iou_thres)):
        x1, y1, x2, y2 = (np.clip(dets[:, k], 0, width if k % 2 == 0 else height) for k in range(4))
        keep = (x2 > x1) & (y2 > y1)
        box = np.stack([(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height], 1)
        rows.append(np.concatenate([np.full((int(keep.sum()), 1), i), dets[keep, 5:6], box[keep]], 1))
    return torch.from_numpy(np.concatenate(rows).astype(np.float32)) if rows else torch.zeros(0, 6)


class TaylorImportance(Importance):
    """First-order Taylor of the YOLO loss (Molchanov et al., 2019), one Fisher-like score per channel.

    Removing a channel sets its BatchNorm scale γ to 0 (what is left, the constant SiLU(β), is what bias folding
    carries into the readers), so per batch the loss changes by about ``-Σ_units γ·∂L/∂γ`` summed over the units
    of the channel's group (a residual stream loses the channel in all of them at once). The score is the
    square of that change summed over batches. ``batches`` gives ``(images [B, 3, H, W] in [0, 1], targets
    [M, 6])`` pairs (labels, as :class:`~ascend_slim.train.loss.YoloLoss` takes them); subclasses make their own.
    The model is scored in eval mode (BN statistics as they are), only BN scales carry gradients.
    """

    name = "taylor-labels"

    def __init__(self, batches: Iterable[Batch] = (), img_size: int = 640, hyp: dict | None = None) -> None:
        self.batches, self.img_size, self.hyp = batches, img_size, hyp

    def labelled_batches(self, model: YOLOv5) -> Iterable[Batch]:
        return self.batches

    def __call__(self, model: YOLOv5, graph: ChannelGraph) -> list[torch.Tensor]:
        from ..train.loss import YoloLoss

        modules = dict(model.named_modules())
        units = [[modules[graph.units[u].bn] for u in g.units] for g in graph.groups]
        scores = [torch.zeros(g.width, dtype=torch.float64) for g in graph.groups]
        flags = {p: p.requires_grad for p in model.parameters()}
        training = model.training
        loss = YoloLoss(model, self.img_size, self.hyp)
        try:
            model.eval().requires_grad_(False)
            for bns in units:
                for bn in bns:
                    bn.weight.requires_grad_(True)
            seen = 0
            for images, targets in self.labelled_batches(model):
                model.zero_grad(set_to_none=True)
                loss(model(images), targets)[0].backward()
                with torch.no_grad():
                    for score, bns in zip(scores, units):
                        score += sum((bn.weight * bn.weight.grad).double() for bn in bns) ** 2
                seen += 1
            if not seen:
                raise AscendSlimError("the Taylor importance needs at least one batch of images")
        finally:
            model.zero_grad(set_to_none=True)
            model.train(training)
            for p, flag in flags.items():
                p.requires_grad_(flag)
        return [s.float() for s in scores]


class PseudoLabelTaylorImportance(TaylorImportance):
    """:class:`TaylorImportance` without labels: the targets are the scored model's own post-NMS detections
    (:func:`pseudo_labels` at ``conf_thres``/``iou_thres``) on ``images`` (paths or BGR arrays, letterboxed to
    ``img_size`` as ``eval`` does). A distillation loss would not do: its gradient is 0 where student = teacher,
    while the detection loss against hard pseudo-boxes is not at its minimum and ranks channels by what the
    detections need."""

    name = "taylor"

    def __init__(self, images: Sequence[str | Path | np.ndarray], img_size: int = 640, batch_size: int = 8,
                 conf_thres: float = 0.25, iou_thres: float = 0.45, hyp: dict | None = None) -> None:
        if not images:
            raise AscendSlimError("the pseudo-label Taylor importance needs at least one image")
        super().__init__((), img_size, hyp)
        self.images, self.batch_size = list(images), batch_size
        self.conf_thres, self.iou_thres = conf_thres, iou_thres

    def labelled_batches(self, model: YOLOv5) -> Iterator[Batch]:
        for images in letterboxed_batches(self.images, self.img_size, self.batch_size):
            yield images, pseudo_labels(model, images, self.conf_thres, self.iou_thres)
