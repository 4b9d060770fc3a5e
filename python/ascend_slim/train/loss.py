"""The YOLOv5 v7.0 training loss (``utils/loss.py::ComputeLoss`` with ``train.py``'s gain scaling).

Per detection level: each target is matched to the anchors whose width and height ratios to it both lie
within ``anchor_t`` (default 4), and assigned to its own grid cell plus the two neighbouring cells nearest to
its centre (a neighbour counts when the centre lies in the cell's near half and more than one cell from the
border). At every assigned (image, anchor, cell):

- box: ``1 - CIoU`` of the predicted box (xy = 2·σ − 0.5 in cell units, wh = (2·σ)² · anchor) and the target,
  averaged per level;
- objectness: BCE-with-logits over the whole level against target = detached CIoU clamped at 0 (0 elsewhere;
  when two targets share a slot, the later one in assignment order wins, as in YOLOv5), weighted by the
  level balance ``[4.0, 1.0, 0.4]``;
- class (only when ``nc > 1``): BCE-with-logits against one-hot targets (label smoothing optional).

Gains: ``box · 3/nl``, ``cls · nc/80 · 3/nl``, ``obj · (img_size/640)² · 3/nl``. The loss is computed in
float32 whatever the heads' dtype (AMP-safe).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..model.yolo import YOLOv5
from .hyp import load_hyp

LEVEL_BALANCE = {3: (4.0, 1.0, 0.4)}
LEVEL_BALANCE_OTHER = (4.0, 1.0, 0.25, 0.06, 0.02)  # P3-P7 models
NEIGHBOUR_BIAS = 0.5
# Cell offsets (x, y) of a target's own cell and of its left, upper, right and lower neighbours.
CELL_OFFSETS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))


def bbox_ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of matching rows of two ``[n, 4]`` xywh box tensors (``alpha`` is not differentiated)."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.unbind(-1), box2.unbind(-1)
    left = torch.max(x1 - w1 / 2, x2 - w2 / 2)
    right = torch.min(x1 + w1 / 2, x2 + w2 / 2)
    top = torch.max(y1 - h1 / 2, y2 - h2 / 2)
    bottom = torch.min(y1 + h1 / 2, y2 + h2 / 2)
    inter = (right - left).clamp(0) * (bottom - top).clamp(0)
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    enclosing_w = torch.max(x1 + w1 / 2, x2 + w2 / 2) - torch.min(x1 - w1 / 2, x2 - w2 / 2)
    enclosing_h = torch.max(y1 + h1 / 2, y2 + h2 / 2) - torch.min(y1 - h1 / 2, y2 - h2 / 2)
    diagonal2 = enclosing_w**2 + enclosing_h**2 + eps
    centre_dist2 = (x2 - x1) ** 2 + (y2 - y1) ** 2
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (centre_dist2 / diagonal2 + v * alpha)


class FocalBCE(nn.Module):
    """BCE-with-logits times ``alpha_t · (1 − p_t)^gamma`` (focal loss), mean-reduced."""

    def __init__(self, pos_weight: torch.Tensor, gamma: float, alpha: float = 0.25) -> None:
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.bce(logits, target)
        prob = logits.sigmoid()
        p_t = target * prob + (1 - target) * (1 - prob)
        alpha_t = target * self.alpha + (1 - target) * (1 - self.alpha)
        return (loss * alpha_t * (1.0 - p_t) ** self.gamma).mean()


@dataclass
class LevelTargets:
    """The assigned slots of one detection level (one row per assignment)."""

    image: torch.Tensor  # [n] batch index
    anchor: torch.Tensor  # [n] anchor index
    gy: torch.Tensor  # [n] grid row
    gx: torch.Tensor  # [n] grid column
    box: torch.Tensor  # [n, 4] target xy relative to the cell, wh, in grid units
    anchor_wh: torch.Tensor  # [n, 2] the matched anchor in grid units
    cls: torch.Tensor  # [n] class index


class YoloLoss:
    """``loss, items = YoloLoss(model, img_size, hyp)(heads, targets)``.

    ``heads``: the model's raw outputs, one ``[B, na, ny, nx, 5 + nc]`` tensor per level; ``targets``:
    ``[M, 6]`` rows ``[image_index, class, cx, cy, w, h]`` normalised to the input size. Returns
    ``(lbox + lobj + lcls) · B`` and the detached ``[lbox, lobj, lcls]``. ``hyp``: a hyp dict or yaml path
    (:func:`ascend_slim.train.hyp.load_hyp`; default hyp.scratch-low) with the yaml's unscaled gains.
    """

    def __init__(self, model: YOLOv5, img_size: int, hyp: Mapping[str, float] | str | None = None) -> None:
        h = load_hyp(hyp)
        detect = model.detect
        self.detect = detect
        self.nc, self.na, self.nl = detect.nc, detect.na, detect.nl
        self.balance = LEVEL_BALANCE.get(self.nl, LEVEL_BALANCE_OTHER)
        self.box_gain = h["box"] * 3 / self.nl
        self.cls_gain = h["cls"] * self.nc / 80 * 3 / self.nl
        self.obj_gain = h["obj"] * (img_size / 640) ** 2 * 3 / self.nl
        self.anchor_t = h["anchor_t"]
        self.cls_pos, self.cls_neg = 1.0 - 0.5 * h["label_smoothing"], 0.5 * h["label_smoothing"]
        device = detect.anchors.device
        cls_pw, obj_pw = torch.tensor([h["cls_pw"]], device=device), torch.tensor([h["obj_pw"]], device=device)
        if h["fl_gamma"] > 0:
            self.bce_cls: nn.Module = FocalBCE(cls_pw, h["fl_gamma"])
            self.bce_obj: nn.Module = FocalBCE(obj_pw, h["fl_gamma"])
        else:
            self.bce_cls = nn.BCEWithLogitsLoss(pos_weight=cls_pw)
            self.bce_obj = nn.BCEWithLogitsLoss(pos_weight=obj_pw)

    def __call__(self, heads: Sequence[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heads = [h.float() for h in heads]
        device = heads[0].device
        targets = targets.to(device=device, dtype=torch.float32)
        lbox, lobj, lcls = (torch.zeros((), device=device) for _ in range(3))
        for head, assigned, balance in zip(heads, self.assign(heads, targets), self.balance):
            tobj = torch.zeros(head.shape[:4], device=device)
            n = assigned.image.shape[0]
            if n:
                pred = head[assigned.image, assigned.anchor, assigned.gy, assigned.gx]  # [n, 5 + nc]
                pxy = pred[:, :2].sigmoid() * 2 - 0.5
                pwh = (pred[:, 2:4].sigmoid() * 2) ** 2 * assigned.anchor_wh
                iou = bbox_ciou(torch.cat((pxy, pwh), 1), assigned.box)
                lbox = lbox + (1.0 - iou).mean()
                tobj[assigned.image, assigned.anchor, assigned.gy, assigned.gx] = iou.detach().clamp(0)
                if self.nc > 1:
                    tcls = torch.full_like(pred[:, 5:], self.cls_neg)
                    tcls[torch.arange(n, device=device), assigned.cls] = self.cls_pos
                    lcls = lcls + self.bce_cls(pred[:, 5:], tcls)
            lobj = lobj + self.bce_obj(head[..., 4], tobj) * balance
        lbox, lobj, lcls = lbox * self.box_gain, lobj * self.obj_gain, lcls * self.cls_gain
        return (lbox + lobj + lcls) * heads[0].shape[0], torch.stack((lbox, lobj, lcls)).detach()

    def assign(self, heads: Sequence[torch.Tensor], targets: torch.Tensor) -> list[LevelTargets]:
        """Match ``targets`` to anchors and cells of every level (see the module docstring)."""
        device, nt, na = targets.device, targets.shape[0], self.na
        anchor_index = torch.arange(na, device=device, dtype=torch.float32).view(na, 1, 1).expand(na, nt, 1)
        per_anchor = torch.cat((targets.unsqueeze(0).expand(na, nt, 6), anchor_index), 2)  # [na, nt, 7]
        offsets = torch.tensor(CELL_OFFSETS, device=device) * NEIGHBOUR_BIAS  # [5, 2]
        levels = []
        for head, anchors in zip(heads, self.detect.anchors.to(device)):
            ny, nx = head.shape[2], head.shape[3]
            scale = torch.tensor([1.0, 1.0, nx, ny, nx, ny, 1.0], device=device)
            t = (per_anchor * scale).reshape(-1, 7)  # anchor-major, then target order
            ratio = (per_anchor[..., 4:6] * scale[4:6] / anchors[:, None]).reshape(-1, 2)
            t = t[torch.max(ratio, 1 / ratio).amax(1) < self.anchor_t]
            gxy = t[:, 2:4]
            gxy_inv = scale[2:4] - gxy
            near_low = ((gxy % 1 < NEIGHBOUR_BIAS) & (gxy > 1)).T  # left, upper neighbour
            near_high = ((gxy_inv % 1 < NEIGHBOUR_BIAS) & (gxy_inv > 1)).T  # right, lower neighbour
            chosen = torch.cat((torch.ones_like(near_low[:1]), near_low, near_high))  # [5, m]
            t = t.unsqueeze(0).expand(5, -1, -1)[chosen]
            cell = (t[:, 2:4] - offsets.unsqueeze(1).expand(-1, chosen.shape[1], -1)[chosen]).long()
            anchor = t[:, 6].long()
            levels.append(LevelTargets(
                image=t[:, 0].long(), anchor=anchor, gy=cell[:, 1].clamp(0, ny - 1), gx=cell[:, 0].clamp(0, nx - 1),
                box=torch.cat((t[:, 2:4] - cell, t[:, 4:6]), 1), anchor_wh=anchors[anchor], cls=t[:, 1].long(),
            ))
        return levels
