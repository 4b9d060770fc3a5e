"""Distillation loss between a student's and a teacher's raw YOLOv5 heads, on the detection loss's scale.

Every value of a YOLOv5 head is the logit of an independent sigmoid (objectness, each class, the box
offsets), so the soft-target loss for a probability is the Bernoulli KL divergence ``KL(σ(t) ‖ σ(s))`` per
value: binary cross entropy against the teacher's probability minus the teacher's own entropy. It has the
gradient of the soft BCE, and is exactly 0 when the student equals the teacher (a plain soft BCE is not).
Three terms, built like the three terms of :class:`ascend_slim.train.loss.YoloLoss` and multiplied by the
same gains (box, cls and obj from the hyp, with ``train.py``'s scaling by levels, classes and image size),
so a distillation weight of 1 weighs the teacher as much as the labels:

* ``obj``: objectness KL averaged over every cell and anchor of a level, levels weighted by the balance
  ``[4.0, 1.0, 0.4]``. Background cells count: they teach the student where there is nothing, which
  unlabelled images can do too.
* ``cls``: class KL averaged over classes, weighted by the teacher's objectness ``σ(t_obj)``: class scores
  of empty cells are never used (NMS multiplies them by objectness), so they are not imitated.
* ``box``: ``1 − CIoU`` between the student's and the teacher's decoded boxes (``xy = 2σ − 0.5`` in cells,
  ``wh = (2σ)² · anchor``), the box loss of the labels with the teacher's box as target, weighted by the
  teacher's objectness like ``cls``: a box only matters where there is an object. The teacher's ``1 − CIoU``
  with itself (a rounding-size epsilon) is subtracted, so this term too is exactly 0 at equality.

The weighted means use the teacher's objectness over the whole batch as the denominator, so images with
many objects weigh more, as they do in the detection loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..train.hyp import load_hyp
from ..train.loss import LEVEL_BALANCE, LEVEL_BALANCE_OTHER, bbox_ciou

TERMS = ("kd_box", "kd_obj", "kd_cls")
BOX_MIN_OBJECTNESS = 1e-3  # cells where the teacher sees less are left out of the box term (weight ~0)


def bernoulli_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Elementwise ``KL(Bernoulli(σ(t)) ‖ Bernoulli(σ(s)))`` from logits (teacher detached); 0 where s == t."""
    teacher_logits = teacher_logits.detach()
    p = teacher_logits.sigmoid()
    return (F.binary_cross_entropy_with_logits(student_logits, p, reduction="none")
            - F.binary_cross_entropy_with_logits(teacher_logits, p, reduction="none"))


def _decoded_boxes(logits: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``[n, 4]`` xywh in grid cells, relative to each box's cell, from ``[n, 4]`` raw box logits and the
    ``[n, 2]`` anchors of their slots (widths kept above 0: CIoU divides by them)."""
    y = logits.sigmoid() * 2
    return torch.cat((y[:, :2] - 0.5, (y[:, 2:4] ** 2 * anchors).clamp(min=1e-6)), 1)


class HeadDistillation:
    """``loss, items = HeadDistillation(anchors, img_size, hyp)(student_heads, teacher_heads)``.

    ``anchors``: the Detect anchors in grid units ``[nl, na, 2]`` (``model.detect.anchors``); heads: one
    ``[B, na, ny, nx, 5 + nc]`` tensor per level, the student's with gradients. Returns
    ``(box + obj + cls) · B`` (the detection loss's scale) and the detached ``{kd_box, kd_obj, kd_cls}``.
    """

    def __init__(self, anchors: torch.Tensor, img_size: int, hyp: Mapping[str, float] | None = None) -> None:
        h = load_hyp(hyp)
        nl = anchors.shape[0]
        self.anchors = anchors.detach().float()
        self.balance = LEVEL_BALANCE.get(nl, LEVEL_BALANCE_OTHER)
        self.box_gain = h["box"] * 3 / nl
        self.obj_gain = h["obj"] * (img_size / 640) ** 2 * 3 / nl
        self.cls_gain_per_class = h["cls"] / 80 * 3 / nl  # times nc, as YoloLoss

    def __call__(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if len(student) != len(teacher) or len(student) != self.anchors.shape[0]:
            raise ValueError(f"student has {len(student)} head levels, teacher {len(teacher)}, anchors "
                             f"{self.anchors.shape[0]}")
        zero = student[0].new_zeros((), dtype=torch.float32)
        box, obj, cls, weight_sum = zero, zero, zero, zero
        anchors = self.anchors.to(student[0].device)
        for s, t, level_anchors, balance in zip(student, teacher, anchors, self.balance):
            if s.shape != t.shape:
                raise ValueError(f"student head {tuple(s.shape)} and teacher head {tuple(t.shape)} differ")
            s, t = s.float(), t.detach().float()
            obj = obj + balance * bernoulli_kl(s[..., 4], t[..., 4]).mean()
            w = t[..., 4].sigmoid()
            weight_sum = weight_sum + w.sum()
            if s.shape[-1] > 6:
                cls = cls + (w * bernoulli_kl(s[..., 5:], t[..., 5:]).mean(-1)).sum()
            boxed = w > BOX_MIN_OBJECTNESS
            slot_anchors = level_anchors.view(1, -1, 1, 1, 2).expand(*boxed.shape, 2)[boxed]
            s_box = _decoded_boxes(s[boxed][:, :4], slot_anchors)
            t_box = _decoded_boxes(t[boxed][:, :4], slot_anchors)
            box = box + (w[boxed] * (bbox_ciou(t_box, t_box) - bbox_ciou(s_box, t_box))).sum()
        weight_sum = weight_sum.clamp(min=1e-6)
        nc = student[0].shape[-1] - 5
        box = box / weight_sum * self.box_gain
        obj = obj * self.obj_gain
        cls = cls / weight_sum * self.cls_gain_per_class * nc
        items = dict(zip(TERMS, (box.detach(), obj.detach(), cls.detach())))
        return (box + obj + cls) * student[0].shape[0], items
