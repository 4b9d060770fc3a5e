"""YoloLoss against values computed by hand: CIoU, target assignment (anchor_t, neighbour cells), level balance,
gains; finite gradients on a real model; a batch without targets; and against reference values (loss terms,
assignment counts, gradients) computed once with Ultralytics YOLOv5 v7.0 ``ComputeLoss`` on seeded inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch

from ascend_slim.model.yolo import YOLOv5
from ascend_slim.train.hyp import DEFAULT_HYP
from ascend_slim.train.loss import YoloLoss, bbox_ciou

LN2 = math.log(2.0)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.fixture(scope="module")
def model() -> YOLOv5:
    """yolov5n with 2 classes: strides 8/16/32 and the default anchors (P3: 10x13, 16x30, 33x23 pixels)."""
    return YOLOv5.from_yaml("yolov5n", nc=2, names=["a", "b"]).train()


def zero_heads(img: int, batch: int = 1, nc: int = 2) -> list[torch.Tensor]:
    return [torch.zeros(batch, 3, img // s, img // s, 5 + nc) for s in (8, 16, 32)]


def target(image: int, cls: int, cx: float, cy: float, w: float, h: float) -> torch.Tensor:
    return torch.tensor([[image, cls, cx, cy, w, h]], dtype=torch.float32)


# -- CIoU ------------------------------------------------------------------------------------------------
def test_ciou_of_shifted_equal_boxes() -> None:
    # 2x2 boxes one unit apart: overlap 1x2 = 2, union 6, enclosing 3x2 (diagonal² 13), centre distance² 1.
    ciou = bbox_ciou(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 0.0, 2.0, 2.0]]))
    assert ciou.item() == pytest.approx(2 / 6 - 1 / 13, abs=1e-6)


def test_ciou_aspect_term() -> None:
    # Same centre, 1x2 vs 2x1: IoU 1/3, no distance term, v = 4/pi² (atan(2) - atan(1/2))², alpha = v/(v - iou + 1).
    iou = 1 / 3
    v = 4 / math.pi**2 * (math.atan(2.0) - math.atan(0.5)) ** 2
    alpha = v / (v - iou + 1)
    ciou = bbox_ciou(torch.tensor([[0.0, 0.0, 1.0, 2.0]]), torch.tensor([[0.0, 0.0, 2.0, 1.0]]))
    assert ciou.item() == pytest.approx(iou - v * alpha, abs=1e-6)


def test_ciou_identical_boxes_is_one() -> None:
    box = torch.tensor([[3.0, 4.0, 1.5, 0.5]])
    assert bbox_ciou(box, box).item() == pytest.approx(1.0, abs=1e-6)


# -- assignment -------------------------------------------------------------------------------------------
def test_assignment_anchors_and_neighbour_cells(model: YOLOv5) -> None:
    # A 16x16 pixel box centred at (19.2, 44.8) in a 64x64 image.
    # P3 (8x8 cells, anchors 1.25x1.625, 2x3.75, 4.125x2.875 cells): box 2x2 cells, worst ratios 1.6, 1.875, 2.06
    # -> all three anchors. Centre (2.4, 5.6): x fraction 0.4 < 0.5 -> left neighbour; y fraction 0.6 ->
    # lower neighbour (8 - 5.6 = 2.4 has fraction 0.4). Cells (2,5) own, (1,5) left, (2,6) lower.
    # P4 (4x4, anchors 1.875x3.8125, 3.875x2.8125, 3.6875x7.4375): box 1x1, ratios 3.81, 3.875, 7.44 -> anchors 0, 1;
    # centre (1.2, 2.8) -> left (0,2) and lower (1,3) neighbours. P5 (2x2): box 0.5 cells, ratio 7.25 -> none.
    crit = YoloLoss(model, 64)
    levels = crit.assign(zero_heads(64), target(0, 1, 0.3, 0.7, 0.25, 0.25))
    assert [len(lv.image) for lv in levels] == [9, 6, 0]

    p3 = levels[0]
    cells = {(int(a), int(x), int(y)) for a, x, y in zip(p3.anchor, p3.gx, p3.gy)}
    assert cells == {(a, x, y) for a in range(3) for x, y in ((2, 5), (1, 5), (2, 6))}
    # Target xy relative to each assigned cell, wh in cells; the anchor that was matched.
    own = (p3.gx == 2) & (p3.gy == 5)
    left = p3.gx == 1
    lower = p3.gy == 6
    torch.testing.assert_close(p3.box[own][0], torch.tensor([0.4, 0.6, 2.0, 2.0]))
    torch.testing.assert_close(p3.box[left][0], torch.tensor([1.4, 0.6, 2.0, 2.0]))
    torch.testing.assert_close(p3.box[lower][0], torch.tensor([0.4, -0.4, 2.0, 2.0]))
    torch.testing.assert_close(p3.anchor_wh[p3.anchor == 1][0], torch.tensor([2.0, 3.75]))
    assert set(p3.cls.tolist()) == {1} and set(p3.image.tolist()) == {0}

    p4 = levels[1]
    assert set(p4.anchor.tolist()) == {0, 1}
    assert {(int(x), int(y)) for x, y in zip(p4.gx, p4.gy)} == {(1, 2), (0, 2), (1, 3)}


def test_anchor_threshold(model: YOLOv5) -> None:
    # With anchor_t 2: P3 anchor 2 (worst ratio 2.06) drops out, anchors 0 (1.6) and 1 (1.875) stay; P4 none.
    crit = YoloLoss(model, 64, {**DEFAULT_HYP, "anchor_t": 2.0})
    levels = crit.assign(zero_heads(64), target(0, 1, 0.3, 0.7, 0.25, 0.25))
    assert [len(lv.image) for lv in levels] == [6, 0, 0]
    assert set(levels[0].anchor.tolist()) == {0, 1}


def test_no_neighbours_at_cell_centre_or_border(model: YOLOv5) -> None:
    crit = YoloLoss(model, 64, {**DEFAULT_HYP, "anchor_t": 1.0001})
    # Exactly anchor 0 of P3 (10x13 px), centred in cell (3, 4): fractions 0.5 -> no neighbours.
    levels = crit.assign(zero_heads(64), target(0, 0, 3.5 / 8, 4.5 / 8, 10 / 64, 13 / 64))
    assert [len(lv.image) for lv in levels] == [1, 0, 0]
    # Centre in cell (0, 0) at fraction 0.25: left/up neighbours would be outside (grid xy not > 1).
    levels = crit.assign(zero_heads(64), target(0, 0, 0.25 / 8, 0.25 / 8, 10 / 64, 13 / 64))
    assert [(int(levels[0].gx[0]), int(levels[0].gy[0]))] == [(0, 0)] and len(levels[0].image) == 1


# -- loss values ------------------------------------------------------------------------------------------
def test_loss_value_by_hand(model: YOLOv5) -> None:
    """One assignment (P3, anchor 0, cell (3, 4)); all logits 0 except: x offset logit ln 3 (sigmoid 0.75 ->
    predicted x 1.0 in the cell instead of 0.5), objectness logit 1.5 at the slot, class logits (0, 2)."""
    img, batch = 64, 2
    crit = YoloLoss(model, img, {**DEFAULT_HYP, "anchor_t": 1.0001})
    heads = zero_heads(img, batch)
    slot = heads[0][1, 0, 4, 3]
    slot[0] = math.log(3.0)
    slot[4] = 1.5
    slot[6] = 2.0
    loss, items = crit(heads, target(1, 1, 3.5 / 8, 4.5 / 8, 10 / 64, 13 / 64))

    # Box: predicted (1.0, 0.5, 1.25, 1.625) vs target (0.5, 0.5, 1.25, 1.625) in cells.
    inter = 0.75 * 1.625
    iou = inter / (2 * 1.25 * 1.625 - inter)
    ciou = iou - 0.25 / (1.75**2 + 1.625**2)
    lbox = (1 - ciou) * 0.05 * 3 / 3
    # Objectness: BCE mean over the P3 level, target = CIoU at the slot; every logit-0 element costs ln 2.
    n3 = batch * 3 * 8 * 8
    p3_obj = ((n3 - 1) * LN2 + softplus(1.5) - ciou * 1.5) / n3
    lobj = (4.0 * p3_obj + 1.0 * LN2 + 0.4 * LN2) * 1.0 * (img / 640) ** 2 * 3 / 3
    # Class: one-hot (0, 1) against logits (0, 2).
    lcls = (LN2 + softplus(2.0) - 2.0) / 2 * 0.5 * 2 / 80 * 3 / 3

    torch.testing.assert_close(items, torch.tensor([lbox, lobj, lcls]), rtol=1e-5, atol=1e-7)
    assert loss.item() == pytest.approx((lbox + lobj + lcls) * batch, rel=1e-5)


def test_gains_scale_with_image_size_and_classes() -> None:
    m2 = YOLOv5.from_yaml("yolov5n", nc=2, names=["a", "b"])
    m8 = YOLOv5.from_yaml("yolov5n", nc=8, names=list("abcdefgh"))
    assert YoloLoss(m2, 320).obj_gain == pytest.approx(0.25)
    assert YoloLoss(m2, 640).obj_gain == pytest.approx(1.0)
    assert YoloLoss(m8, 640).cls_gain == pytest.approx(4 * YoloLoss(m2, 640).cls_gain)
    assert YoloLoss(m2, 640, {**DEFAULT_HYP, "box": 0.1}).box_gain == pytest.approx(0.1)


def test_single_class_has_no_class_loss() -> None:
    m1 = YOLOv5.from_yaml("yolov5n", nc=1, names=["a"])
    heads = [torch.randn(1, 3, s, s, 6) for s in (8, 4, 2)]
    _, items = YoloLoss(m1, 64)(heads, target(0, 0, 0.5, 0.5, 0.3, 0.3))
    assert items[2].item() == 0.0 and items[0].item() > 0


# -- real model ----------------------------------------------------------------------------------------
def test_gradients_finite_and_empty_batch(model: YOLOv5) -> None:
    torch.manual_seed(0)
    crit = YoloLoss(model, 96)
    images = torch.rand(2, 3, 96, 96)
    targets = torch.tensor([[0, 0, 0.5, 0.5, 0.3, 0.4], [1, 1, 0.2, 0.8, 0.1, 0.15], [1, 0, 0.7, 0.3, 0.6, 0.5]])
    model.zero_grad()
    loss, items = crit(model(images), targets)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) == sum(1 for _ in model.parameters())
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert torch.isfinite(items).all() and (items > 0).all()

    model.zero_grad()
    loss, items = crit(model(images), torch.zeros(0, 6))
    loss.backward()
    assert items[0].item() == 0.0 and items[2].item() == 0.0 and items[1].item() > 0
    assert loss.item() == pytest.approx(items[1].item() * 2)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# -- parity with Ultralytics YOLOv5 v7.0 ComputeLoss ---------------------------------------------------------
# The reference values below were computed once with the Ultralytics code, not with ascend-slim: YOLOv5 v7.0
# (github.com/ultralytics/yolov5, tag v7.0, commit 915bbf294bb74c859f0b41f1c23bc395014ea679), its
# utils/loss.py unchanged plus bbox_iou (utils/metrics.py) and de_parallel (utils/torch_utils.py) copied into a
# scratch folder outside this repository. A script there imported `parity_inputs` from this file, built a stub
# model exposing what ComputeLoss reads (Detect's nl/na/nc, yolov5n's anchors divided by the strides 8/16/32, one
# parameter for the device) with `model.hyp` = v7.0 data/hyps/hyp.scratch-low.yaml updated by the case's `hyp`
# and scaled as train.py does (box·3/nl, cls·nc/80·3/nl, obj·(img/640)²·3/nl, label_smoothing = the case's),
# and ran `ComputeLoss(model)` (autobalance off and gr 1.0, as train.py constructs it) in float32 on the CPU
# (torch 2.13.0): `loss, items = compute_loss(heads, targets)`, then `loss.backward()` for the gradient probes;
# `assigned` counts the (image, anchor, cell) rows build_targets returns per level.
# `inputs` is sum(|heads|) + sum(targets) in float64: it tells a changed input recipe (or a changed torch
# generator) apart from a changed loss.


@dataclass(frozen=True)
class ParityCase:
    nc: int
    img: int
    batch: int
    seed: int
    random_targets: int  # rows drawn after EDGE_TARGETS
    hyp: dict = field(default_factory=dict)  # overrides of hyp.scratch-low (label_smoothing included)


# Hand-picked target rows [image, class, cx, cy, w, h] (image taken mod batch, class mod nc): an ordinary box; the
# same box with another class (it shares every slot: the later assignment wins the objectness target); boxes at
# the top-left and bottom-right borders (clamped cells, no outside neighbours); a box too small for every anchor;
# a box nearly the whole image (P5 only); a tall thin one; a centre on an exact half cell.
EDGE_TARGETS = (
    (0, 0, 0.5, 0.5, 0.3, 0.4),
    (0, 1, 0.5, 0.5, 0.3, 0.4),
    (1, 2, 0.01, 0.02, 0.05, 0.08),
    (1, 0, 0.995, 0.99, 0.06, 0.04),
    (2, 1, 0.3, 0.7, 0.004, 0.004),
    (2, 2, 0.45, 0.55, 0.95, 0.9),
    (0, 2, 0.25, 0.75, 0.12, 0.5),
    (1, 1, 0.4375, 0.5625, 0.2, 0.15),
)

PARITY_CASES = {
    "scratch-low nc3 160px": ParityCase(nc=3, img=160, batch=3, seed=17, random_targets=12),
    "focal, smoothing, pos weights, anchor_t 3, nc5 96px": ParityCase(
        nc=5, img=96, batch=2, seed=29, random_targets=10,
        hyp={"fl_gamma": 1.5, "label_smoothing": 0.1, "cls_pw": 1.5, "obj_pw": 0.7, "anchor_t": 3.0, "box": 0.07,
             "cls": 0.3, "obj": 0.8}),
    "single class 64px": ParityCase(nc=1, img=64, batch=2, seed=41, random_targets=6),
    "no targets nc3 64px": ParityCase(nc=3, img=64, batch=2, seed=53, random_targets=-1),
}


def parity_inputs(case: ParityCase) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
    """Heads, targets and gradient probes of one case, all from ``torch.Generator().manual_seed(case.seed)``
    in this order: per level (strides 8, 16, 32) heads ``1.5 · randn(batch, 3, img/s, img/s, 5 + nc)``; a
    ``[random_targets, 4]`` ``rand`` block (centre, then size ``0.02 + 0.5 · rand``), images ``randint(batch)``
    and classes ``randint(nc)``, appended after EDGE_TARGETS (``random_targets == -1``: no targets at all); per
    level a probe ``rand − 0.5`` of the head's shape (the gradient is checked as ``Σ grad · probe`` per level)."""
    g = torch.Generator().manual_seed(case.seed)
    shapes = [(case.batch, 3, case.img // s, case.img // s, 5 + case.nc) for s in (8, 16, 32)]
    heads = [1.5 * torch.randn(shape, generator=g) for shape in shapes]
    if case.random_targets < 0:
        targets = torch.zeros(0, 6)
    else:
        n = case.random_targets
        xywh = torch.rand(n, 4, generator=g)
        xywh[:, 2:] = 0.02 + 0.5 * xywh[:, 2:]
        image = torch.randint(case.batch, (n, 1), generator=g).float()
        cls = torch.randint(case.nc, (n, 1), generator=g).float()
        edge = torch.tensor(EDGE_TARGETS)
        edge[:, 0] %= case.batch
        edge[:, 1] %= case.nc
        targets = torch.cat((edge, torch.cat((image, cls, xywh), 1)))
    probes = [torch.rand(shape, generator=g) - 0.5 for shape in shapes]
    return heads, targets, probes


PARITY_REFERENCE: dict[str, dict] = {
    "scratch-low nc3 160px": {
        "inputs": 45133.36079484828, "assigned": [110, 95, 35],
        "lbox": 0.13392116129398346, "lobj": 0.3062921464443207, "lcls": 0.05232789367437363,
        "loss": 1.477623701095581,
        "grad_probes": [0.00025652109670230914, -0.0008552450228310169, -0.0004284173864152409],
    },
    "focal, smoothing, pos weights, anchor_t 3, nc5 96px": {
        "inputs": 13701.407344924795, "assigned": [96, 59, 7],
        "lbox": 0.18752287328243256, "lobj": 0.04356152191758156, "lcls": 0.018094893544912338,
        "loss": 0.4983585774898529,
        "grad_probes": [-0.00012125739367360505, 0.001421934638054308, -0.002587195153004258],
    },
    "single class 64px": {
        "inputs": 3641.8533263258287, "assigned": [86, 41, 6],
        "lbox": 0.14247030019760132, "lobj": 0.05093160644173622, "lcls": 0.0,
        "loss": 0.3868038058280945,
        "grad_probes": [-0.0005342579843632698, -0.0009295380247867453, -0.0013635065593338128],
    },
    "no targets nc3 64px": {
        "inputs": 4843.595944868721, "assigned": [0, 0, 0],
        "lbox": 0.0, "lobj": 0.04871181398630142, "lcls": 0.0,
        "loss": 0.09742362797260284,
        "grad_probes": [-0.0008830178154184674, 8.215225065516345e-05, -0.0002725210389897028],
    },
}


@pytest.mark.parametrize("name", list(PARITY_CASES))
def test_loss_equals_ultralytics_v7(name: str) -> None:
    case, ref = PARITY_CASES[name], PARITY_REFERENCE[name]
    heads, targets, probes = parity_inputs(case)
    fingerprint = sum(h.double().abs().sum().item() for h in heads) + targets.double().sum().item()
    assert fingerprint == pytest.approx(ref["inputs"], rel=1e-9), "the inputs differ from the reference's"

    model = YOLOv5.from_yaml("yolov5n", nc=case.nc, names=[str(i) for i in range(case.nc)])
    heads = [h.requires_grad_() for h in heads]
    crit = YoloLoss(model, case.img, {**DEFAULT_HYP, **case.hyp})
    assert [len(level.image) for level in crit.assign(heads, targets)] == ref["assigned"]
    loss, items = crit(heads, targets)
    loss.backward()

    assert items.tolist() == pytest.approx([ref["lbox"], ref["lobj"], ref["lcls"]], rel=1e-5, abs=1e-9)
    assert loss.item() == pytest.approx(ref["loss"], rel=1e-5)
    grad_probes = [(h.grad.double() * p.double()).sum().item() for h, p in zip(heads, probes)]
    assert grad_probes == pytest.approx(ref["grad_probes"], rel=1e-5, abs=1e-9)
