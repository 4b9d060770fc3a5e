"""Plain numpy/OpenCV reference of the C++ core (``ascend_slim.core``), used by the parity tests and benchmarks.

Vectorised the way one would write it without the core: sigmoid of the objectness column first, the rest
only for the cells that pass, and a greedy NMS per class whose IoU step is one vectorised numpy expression.
Decisions use float64 sigmoids and float32 boxes/IoU, the precisions the core documents.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

MAX_NMS = 30000  # YOLOv5's cap on candidates entering NMS


# -- letterbox --------------------------------------------------------------------------------------------
def letterbox_geometry(shape: tuple[int, int], size: tuple[int, int], auto: bool = False, scaleup: bool = True,
                       stride: int = 32) -> tuple[float, tuple[int, int], tuple[int, int, int, int]]:
    """YOLOv5 ``letterbox`` arithmetic: ``(r, (new_w, new_h), (top, bottom, left, right))``."""
    r = min(size[0] / shape[0], size[1] / shape[1])
    if not scaleup:
        r = min(r, 1.0)
    new_w, new_h = max(1, round(shape[1] * r)), max(1, round(shape[0] * r))
    dw, dh = size[1] - new_w, size[0] - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    pads = round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)
    return r, (new_w, new_h), pads


def letterbox(img: np.ndarray, size: tuple[int, int], color: int = 114, auto: bool = False, scaleup: bool = True,
              stride: int = 32) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``cv2.resize`` (INTER_LINEAR) + ``cv2.copyMakeBorder``, as YOLOv5."""
    r, new, (top, bottom, left, right) = letterbox_geometry(img.shape[:2], size, auto, scaleup, stride)
    if (img.shape[1], img.shape[0]) != new:
        img = cv2.resize(img, new, interpolation=cv2.INTER_LINEAR)
    out = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(color, color, color))
    return out, r, (left, top)


def preprocess(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Letterbox, BGR->RGB, HWC->CHW, float32 / 255: ``1x3xHxW``."""
    out, _, _ = letterbox(img, size)
    chw = np.ascontiguousarray(out[:, :, ::-1].transpose(2, 0, 1))
    return (chw.astype(np.float32) / np.float32(255.0))[None]


# -- decode -----------------------------------------------------------------------------------------------
def sigmoid(x: np.ndarray) -> np.ndarray:
    """float64 sigmoid."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def cells_last(head: np.ndarray, na: int) -> np.ndarray:
    """Any head layout as ``[N, na, ny, nx, no]``."""
    if head.ndim == 5:
        return head
    n, c, ny, nx = head.shape
    return head.reshape(n, na, c // na, ny, nx).transpose(0, 1, 3, 4, 2)


def _select(obj: np.ndarray, cls_values: np.ndarray, prob, conf: float, multi_label: bool):
    """(row index, class, score) of the passing (cell, class) pairs; ``prob`` maps class values to probabilities."""
    if multi_label:
        with np.errstate(invalid="ignore"):
            score = obj[:, None] * prob(cls_values)
            rows, cls = np.nonzero(score > conf)
        return rows, cls, score[rows, cls]
    cls = np.argmax(np.where(np.isnan(cls_values), -np.inf, cls_values), axis=1)
    score = obj * prob(cls_values[np.arange(len(cls_values)), cls])
    rows = np.nonzero(score > conf)[0]
    return rows, cls[rows], score[rows]


def usable(boxes: np.ndarray) -> np.ndarray:
    """The core's one box rule: finite corners with x1 <= x2 and y1 <= y2 (zero size allowed)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(boxes).all(1) & (boxes[:, 0] <= boxes[:, 2]) & (boxes[:, 1] <= boxes[:, 3])


def _candidates(corners: np.ndarray, score: np.ndarray, cls: np.ndarray):
    boxes = corners.astype(np.float32)
    score = score.astype(np.float32)
    ok = usable(boxes) & np.isfinite(score)
    return boxes[ok], score[ok], cls[ok].astype(np.int64)


def decode(heads: Sequence[np.ndarray], anchors: np.ndarray, strides: Sequence[float], conf_thres: float = 0.25,
           multi_label: bool = False, obj_thres: float | None = None):
    """Per image ``(boxes float32 (K,4), scores float32 (K,), classes int64 (K,))`` in candidate order."""
    anchors = np.asarray(anchors, dtype=np.float64)
    obj_thres = conf_thres if obj_thres is None else obj_thres
    na = anchors.shape[1]
    views = [cells_last(h, na) for h in heads]
    out = []
    for n in range(views[0].shape[0]):
        parts = []
        for h, anc, stride in zip(views, anchors, strides):
            _, _, ny, nx, no = h.shape
            x = h[n].reshape(-1, no)
            obj = sigmoid(x[:, 4])
            idx = np.nonzero(obj > obj_thres)[0]
            x, obj = x[idx].astype(np.float32), obj[idx]
            rows, cls, score = _select(obj, x[:, 5:], sigmoid, conf_thres, multi_label)
            idx, x = idx[rows], x[rows]
            a, cell = idx // (ny * nx), idx % (ny * nx)
            gx, gy = (cell % nx).astype(np.float64), (cell // nx).astype(np.float64)
            s = sigmoid(x[:, :4])
            cx = (2.0 * s[:, 0] - 0.5 + gx) * stride
            cy = (2.0 * s[:, 1] - 0.5 + gy) * stride
            w = (2.0 * s[:, 2]) ** 2 * anc[a, 0]
            hh = (2.0 * s[:, 3]) ** 2 * anc[a, 1]
            corners = np.stack([cx - 0.5 * w, cy - 0.5 * hh, cx + 0.5 * w, cy + 0.5 * hh], axis=1)
            parts.append(_candidates(corners, score, cls))
        out.append(tuple(np.concatenate(p) for p in zip(*parts)))
    return out


def decode_rows(pred: np.ndarray, conf_thres: float = 0.25, multi_label: bool = False,
                obj_thres: float | None = None):
    """``decode`` for already-decoded ``[N, K, 5+nc]`` rows (xywh pixels, probabilities)."""
    obj_thres = conf_thres if obj_thres is None else obj_thres
    out = []
    for x in pred:
        obj = x[:, 4].astype(np.float64)
        with np.errstate(invalid="ignore"):
            idx = np.nonzero((obj > obj_thres) & (obj > 0) & np.isfinite(obj))[0]
        x, obj = x[idx].astype(np.float32), obj[idx]
        rows, cls, score = _select(obj, x[:, 5:], lambda v: v.astype(np.float64), conf_thres, multi_label)
        xywh = x[rows, :4].astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            half = 0.5 * xywh[:, 2:]
            corners = np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)
            out.append(_candidates(corners, np.where(np.isfinite(score), score, np.nan), cls))
    return out


# -- NMS --------------------------------------------------------------------------------------------------
def _greedy(boxes: np.ndarray, iou_thres: float, limit: int | None) -> list[int]:
    """Greedy NMS over boxes in descending score order; positions kept."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    rest, kept = np.arange(len(boxes)), []
    while rest.size and (limit is None or len(kept) < limit):
        i, rest = rest[0], rest[1:]
        kept.append(int(i))
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (area[i] + area[rest] - inter)
        rest = rest[~(iou > np.float64(iou_thres))]
    return kept


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_thres: float = 0.45,
        max_det: int | None = 300, agnostic: bool = False, max_nms: int | None = MAX_NMS) -> np.ndarray:
    """Indices kept, highest score first (stable on ties), per-class greedy NMS."""
    order = np.nonzero(~np.isnan(scores) & usable(np.asarray(boxes, np.float32).reshape(-1, 4)))[0]
    order = order[np.argsort(-scores[order], kind="stable")][:max_nms]
    groups = [np.arange(len(order))] if agnostic else [
        np.nonzero(classes[order] == c)[0] for c in np.unique(classes[order])]
    kept = np.sort(np.concatenate([g[_greedy(boxes[order[g]], iou_thres, max_det)] for g in groups] or
                                  [np.zeros(0, np.int64)]))
    return order[kept[:max_det]].astype(np.int64)


# -- postprocess ------------------------------------------------------------------------------------------
def _finish(candidates, iou_thres: float, max_det: int | None, agnostic: bool, classes, mode: str) -> np.ndarray:
    boxes, scores, cls = candidates
    if classes is not None:
        keep = np.isin(cls, classes)
        boxes, scores, cls = boxes[keep], scores[keep], cls[keep]
    if mode == "mindx":
        keep = nms(boxes, scores, cls, iou_thres, max_det=None, agnostic=False, max_nms=None)
    else:
        keep = nms(boxes, scores, cls, iou_thres, max_det=max_det, agnostic=agnostic)
    return np.concatenate([boxes[keep], scores[keep, None], cls[keep, None].astype(np.float32)], axis=1)


def postprocess(heads, anchors, strides, conf_thres=0.25, iou_thres=0.45, max_det=300, multi_label=False,
                agnostic=False, classes=None, mode="yolov5", obj_thres=None) -> list[np.ndarray]:
    """``decode`` + NMS per image: ``Kx6 float32`` sorted by score (mindx: best class, no caps)."""
    multi_label = multi_label and mode == "yolov5"
    return [_finish(c, iou_thres, max_det, agnostic, classes, mode)
            for c in decode(heads, anchors, strides, conf_thres, multi_label, obj_thres)]


def postprocess_decoded(pred, conf_thres=0.25, iou_thres=0.45, max_det=300, multi_label=False, agnostic=False,
                        classes=None, mode="yolov5", obj_thres=None) -> list[np.ndarray]:
    """``postprocess`` for already-decoded rows."""
    multi_label = multi_label and mode == "yolov5"
    return [_finish(c, iou_thres, max_det, agnostic, classes, mode)
            for c in decode_rows(pred, conf_thres, multi_label, obj_thres)]


def scale_boxes(dets: np.ndarray, ratio: float, pad: tuple[float, float], orig_shape: tuple[int, int]) -> np.ndarray:
    """Letterbox -> original pixels, clipped."""
    out = dets.copy()
    h, w = orig_shape
    xy = dets[:, :4].astype(np.float64)
    xy[:, [0, 2]] = np.clip((xy[:, [0, 2]] - pad[0]) / ratio, 0, w)
    xy[:, [1, 3]] = np.clip((xy[:, [1, 3]] - pad[1]) / ratio, 0, h)
    out[:, :4] = xy.astype(np.float32)
    return out


# -- synthetic heads --------------------------------------------------------------------------------------
YOLOV5_ANCHORS = np.array([[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
                          dtype=np.float64).reshape(3, 3, 2)
YOLOV5_STRIDES = (8.0, 16.0, 32.0)


def detector_like_heads(rng: np.random.Generator, batch: int = 1, img_size: int = 640, nc: int = 80,
                        objects: int = 10, dtype: type = np.float32) -> list[np.ndarray]:
    """Raw heads ``[N, 3, s, s, 5+nc]`` (strides 8/16/32) whose logits resemble a trained detector's.

    Recipe (matched to yolov5n on the shared photos: median objectness logit about -13, a couple of thousand
    cells above logit(0.001), a few dozen above logit(0.25)): background objectness ~ N(-12, 3), class logits
    ~ N(-6, 1.8), xy logits ~ N(0, 0.8), wh logits ~ N(0.5, 0.9); each of ``objects`` objects lights a 3x3
    cell neighbourhood on all anchors of one random level with objectness ~ N(-1, 2.5) and its class ~ N(1, 1.5).
    """
    heads = []
    for s in (img_size // 8, img_size // 16, img_size // 32):
        h = np.empty((batch, 3, s, s, 5 + nc), dtype=np.float32)
        h[..., :2] = rng.normal(0.0, 0.8, h[..., :2].shape)
        h[..., 2:4] = rng.normal(0.5, 0.9, h[..., 2:4].shape)
        h[..., 4] = rng.normal(-12.0, 3.0, h[..., 4].shape)
        h[..., 5:] = rng.normal(-6.0, 1.8, h[..., 5:].shape)
        heads.append(h)
    for n in range(batch):
        for _ in range(objects):
            h = heads[rng.integers(len(heads))]
            s = h.shape[2]
            y, x, c = rng.integers(0, s - 2), rng.integers(0, s - 2), rng.integers(nc)
            cells = h[n, :, y:y + 3, x:x + 3]
            cells[..., 4] = rng.normal(-1.0, 2.5, cells[..., 4].shape)
            cells[..., 5 + c] = rng.normal(1.0, 1.5, cells[..., 5 + c].shape)
    return [h.astype(dtype) for h in heads]
