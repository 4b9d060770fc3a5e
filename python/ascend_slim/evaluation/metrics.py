"""Detection matching and average precision with the Pascal VOC devkit rules, vectorised.

Rules (VOC devkit ``VOCevaldet.m`` / ``voc_eval.py``): per class, detections are taken in descending score
order (stable: ties keep input order, images in annotation order); each detection's best-overlap ground
truth (GT) of its image decides, difficult GT included; IoU uses inclusive pixels (areas
``(x2 - x1 + 1) * (y2 - y1 + 1)``); a detection matches when IoU > threshold; a match to a difficult GT counts
neither as true nor false positive; a second match to an already matched GT is a false positive; ``npos``
counts non-difficult GT.

Coordinates: VOC XML is 1-based, predictions are 0-based, so 1 is added to every predicted coordinate
before matching. Detections from in-memory arrays and from det files take the same path.

A class without non-difficult GT (``npos == 0``) has AP NaN (the devkit divides by zero there) and is
excluded from every mean; ``EvalResult.classes_without_gt`` names such classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.voc import Annotation

IOU_THRESHOLDS: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
SAMPLE_IOU = 0.55  # the Ascend sample's compute_mAP/reval_voc.py threshold
# The 11 recall points exactly as the Python devkit forms them (np.arange(0., 1.1, 0.1)).
VOC07_RECALL_POINTS = np.arange(0.0, 1.1, 0.1)

METRIC_LABELS: dict[str, str] = {
    "ap50_voc07": "AP@0.5 VOC07 11-point",
    "ap50": "AP@0.5 all-point (area)",
    "ap55_sample": "AP@0.55 all-point (Ascend sample's metric)",
    "ap50_95": "AP@0.5:0.95 all-point",
}

_IOU_CHUNK = 1 << 20  # IoU matrix entries computed at once (bounds memory for crowded images)


def iou_plus1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcastable ``(..., 4)`` boxes with the +1 (inclusive pixel) convention.

    Widths and heights below 0 are clamped, so degenerate boxes overlap nothing.
    """
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1.0
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1.0
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    area_a = np.clip(a[..., 2] - a[..., 0] + 1.0, 0.0, None) * np.clip(a[..., 3] - a[..., 1] + 1.0, 0.0, None)
    area_b = np.clip(b[..., 2] - b[..., 0] + 1.0, 0.0, None) * np.clip(b[..., 3] - b[..., 1] + 1.0, 0.0, None)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def all_point_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone precision envelope (VOC2010+ method)."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def precision_envelope_at(recall: np.ndarray, precision: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The maximum precision at recall >= t for each recall point ``t`` (0 where no recall reaches t)."""
    if len(recall) == 0:
        return np.zeros(len(points))
    envelope = np.concatenate((np.maximum.accumulate(precision[::-1])[::-1], [0.0]))
    return envelope[np.searchsorted(recall, points, side="left")]  # recall is non-decreasing


def interpolated_ap(recall: np.ndarray, precision: np.ndarray, points: np.ndarray = VOC07_RECALL_POINTS) -> float:
    """Mean precision envelope over the recall points: the VOC07 11-point AP by default."""
    return float(precision_envelope_at(recall, precision, points).mean())


@dataclass
class EvalResult:
    """Per-class and mean AP, counts and PR curves (at IoU 0.5) of one evaluation."""

    class_names: tuple[str, ...]
    npos: np.ndarray  # (C,) non-difficult GT per class
    ndet: np.ndarray  # (C,) detections per class on the evaluated images
    ap: np.ndarray  # (C, T) all-point AP at each of IOU_THRESHOLDS (NaN where npos == 0)
    ap50_voc07: np.ndarray  # (C,) 11-point AP at IoU 0.5
    curves: list[tuple[np.ndarray, np.ndarray]]  # per class (recall, precision) at IoU 0.5, score order
    num_images: int
    ignored_detections: int  # detections on images that are not in the annotations (skipped or unlisted)

    @property
    def ap50(self) -> np.ndarray:
        return self.ap[:, IOU_THRESHOLDS.index(0.5)]

    @property
    def ap55_sample(self) -> np.ndarray:
        return self.ap[:, IOU_THRESHOLDS.index(SAMPLE_IOU)]

    @property
    def ap50_95(self) -> np.ndarray:
        return self.ap.mean(axis=1)

    @property
    def classes_without_gt(self) -> list[str]:
        return [name for name, n in zip(self.class_names, self.npos) if n == 0]

    def per_class(self, metric: str) -> np.ndarray:
        """The per-class values of one of the METRIC_LABELS keys."""
        if metric not in METRIC_LABELS:
            raise KeyError(f"unknown metric {metric!r}; choose from {', '.join(METRIC_LABELS)}")
        return getattr(self, metric)

    def mean(self, metric: str) -> float:
        """Mean over the classes that have ground truth (NaN if none has)."""
        values = self.per_class(metric)[self.npos > 0]
        return float(values.mean()) if values.size else float("nan")

    @property
    def means(self) -> dict[str, float]:
        """Every metric's mean over the classes with ground truth, keyed like METRIC_LABELS."""
        return {m: self.mean(m) for m in METRIC_LABELS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (NaN becomes None); PR curves are left out."""

        def num(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        classes = []
        for c, name in enumerate(self.class_names):
            row: dict[str, Any] = {"name": name, "npos": int(self.npos[c]), "detections": int(self.ndet[c])}
            row.update({m: num(self.per_class(m)[c]) for m in METRIC_LABELS})
            row["ap_per_iou"] = [num(v) for v in self.ap[c]]
            classes.append(row)
        return {
            "metrics": {m: {"label": METRIC_LABELS[m], "mean": num(v)} for m, v in self.means.items()},
            "iou_thresholds": list(IOU_THRESHOLDS),
            "num_images": self.num_images,
            "num_classes_evaluated": int((self.npos > 0).sum()),
            "classes_without_gt": self.classes_without_gt,
            "num_objects": int(self.npos.sum()),
            "num_detections": int(self.ndet.sum()),
            "ignored_detections": self.ignored_detections,
            "classes": classes,
            "notes": "VOC devkit rules (IoU > t, +1 pixel areas, difficult ignored, duplicates false); "
            "classes without non-difficult ground truth have AP null and are excluded from the means",
        }


def _gather_detections(
    detections: Mapping[str, np.ndarray], ids: Sequence[str], num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate detections in annotation order: ``(N, 6)`` rows with 1-based boxes, and image indices."""
    rows, images = [np.zeros((0, 6))], [np.zeros(0, dtype=np.int64)]
    for i, image_id in enumerate(ids):
        det = detections.get(image_id)
        if det is None or len(det) == 0:
            continue
        det = np.asarray(det, dtype=np.float64)
        if det.ndim != 2 or det.shape[1] != 6:
            raise ValueError(f"detections of image {image_id} have shape {det.shape}, expected (K, 6)")
        rows.append(det)
        images.append(np.full(len(det), i, dtype=np.int64))
    dets, img = np.concatenate(rows), np.concatenate(images)
    cls = dets[:, 5]
    if not np.isfinite(dets).all():
        raise ValueError("detections contain NaN or infinite values")
    if ((cls != np.round(cls)) | (cls < 0) | (cls >= num_classes)).any():
        raise ValueError(f"detection class ids must be integers in [0, {num_classes})")
    dets = dets.copy()
    dets[:, :4] += 1.0  # 0-based predictions -> the XML's 1-based pixels
    return dets, img


def _best_overlaps(
    boxes: np.ndarray, img: np.ndarray, gt_boxes: np.ndarray, starts: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each detection's highest IoU with a GT of its image (-inf if none) and that GT's index (first on ties)."""
    ovmax = np.full(len(boxes), -np.inf)
    gmax = np.zeros(len(boxes), dtype=np.int64)
    width = int(counts.max()) if counts.size else 0
    if width == 0:
        return ovmax, gmax
    cols = np.arange(width)
    rows = max(1, _IOU_CHUNK // width)
    for s in range(0, len(boxes), rows):
        im = img[s : s + rows]
        valid = cols < counts[im][:, None]
        gidx = np.where(valid, starts[im][:, None] + cols, 0)
        iou = np.where(valid, iou_plus1(boxes[s : s + rows, None, :], gt_boxes[gidx]), -np.inf)
        j = iou.argmax(axis=1)
        ovmax[s : s + rows] = iou[np.arange(len(j)), j]
        gmax[s : s + rows] = gidx[np.arange(len(j)), j]
    return ovmax, gmax


def _match_flags(
    ovmax: np.ndarray, gmax: np.ndarray, gt_difficult: np.ndarray, thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """True-positive flags of score-sorted detections at one IoU threshold, and which are ignored (matched a
    difficult GT)."""
    hit = ovmax > thr
    difficult = hit & gt_difficult[gmax] if gt_difficult.size else np.zeros_like(hit)
    candidate = np.flatnonzero(hit & ~difficult)
    tp = np.zeros(len(hit), dtype=bool)
    _, first = np.unique(gmax[candidate], return_index=True)  # the first claim of a GT wins, later ones are FP
    tp[candidate[first]] = True
    return tp, difficult


def _pr_curve(
    ovmax: np.ndarray, gmax: np.ndarray, gt_difficult: np.ndarray, npos: int, thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision over score-sorted detections at one IoU threshold (ignored detections dropped)."""
    tp, ignored = _match_flags(ovmax, gmax, gt_difficult, thr)
    tp = tp[~ignored]
    ctp = np.cumsum(tp)
    cfp = np.cumsum(~tp)
    recall = ctp / npos if npos > 0 else np.full(len(ctp), np.nan)
    return recall, ctp / np.maximum(ctp + cfp, 1)


def score_detections(
    detections: Mapping[str, np.ndarray], annotations: Mapping[str, Annotation], class_names: Sequence[str]
) -> EvalResult:
    """Score detections against VOC ground truth.

    ``detections`` maps image id to a float ``(K, 6)`` array ``[x1, y1, x2, y2, score, class_id]`` in 0-based
    pixels with class ids indexing ``class_names``; images without an entry have no detections. Only images
    in ``annotations`` are scored (detections on others are counted in ``ignored_detections``).
    """
    ids = list(annotations)
    num_classes = len(class_names)
    dets, det_img = _gather_detections(detections, ids, num_classes)
    ignored = sum(len(d) for k, d in detections.items() if k not in annotations)

    gt = [annotations[i] for i in ids]
    gt_boxes = np.concatenate([np.zeros((0, 4))] + [a.boxes for a in gt])
    gt_labels = np.concatenate([np.zeros(0, dtype=np.int64)] + [a.labels for a in gt])
    gt_difficult = np.concatenate([np.zeros(0, dtype=bool)] + [a.difficult for a in gt])
    gt_img = np.repeat(np.arange(len(ids)), [len(a.labels) for a in gt])

    npos = np.zeros(num_classes, dtype=np.int64)
    ndet = np.zeros(num_classes, dtype=np.int64)
    ap = np.full((num_classes, len(IOU_THRESHOLDS)), np.nan)
    ap07 = np.full(num_classes, np.nan)
    curves = []
    for c in range(num_classes):
        g = gt_labels == c
        g_img, g_boxes, g_difficult = gt_img[g], gt_boxes[g], gt_difficult[g]
        counts = np.bincount(g_img, minlength=len(ids))
        starts = np.cumsum(counts) - counts
        npos[c] = int((~g_difficult).sum())

        d = np.flatnonzero(dets[:, 5] == c)
        d = d[np.argsort(-dets[d, 4], kind="stable")]
        ndet[c] = len(d)
        ovmax, gmax = _best_overlaps(dets[d, :4], det_img[d], g_boxes, starts, counts)
        for t, thr in enumerate(IOU_THRESHOLDS):
            recall, precision = _pr_curve(ovmax, gmax, g_difficult, npos[c], thr)
            if thr == 0.5:
                curves.append((recall, precision))
                if npos[c]:
                    ap07[c] = interpolated_ap(recall, precision)
            if npos[c]:
                ap[c, t] = all_point_ap(recall, precision)
    return EvalResult(tuple(class_names), npos, ndet, ap, ap07, curves, len(ids), ignored)


@dataclass(frozen=True)
class ClassMatches:
    """One class's detections in the order AP reads them (descending score, stable), ignored ones dropped."""

    image: np.ndarray  # (K,) int64 index of each detection's image in the annotation order
    tp: np.ndarray  # (K,) bool: true positive (else false positive)


@dataclass(frozen=True)
class Matches:
    """Detections matched to ground truth at one IoU threshold, by exactly the rules of :func:`score_detections`.

    Matching is per image (a detection's status depends only on its own image's detections and GT), so these
    records can be re-weighted per image (a bootstrap resample) without matching again.
    """

    image_ids: tuple[str, ...]  # annotation order
    class_names: tuple[str, ...]
    npos: np.ndarray  # (N, C) int64 non-difficult GT per image and class
    classes: tuple[ClassMatches, ...]  # (C,)


def match_detections(
    detections: Mapping[str, np.ndarray], annotations: Mapping[str, Annotation], class_names: Sequence[str],
    iou_threshold: float = 0.5,
) -> Matches:
    """Match detections (formats as in :func:`score_detections`) to ground truth at one IoU threshold."""
    ids = list(annotations)
    num_classes = len(class_names)
    dets, det_img = _gather_detections(detections, ids, num_classes)
    npos = np.zeros((len(ids), num_classes), dtype=np.int64)
    classes = []
    for c in range(num_classes):
        boxes, difficult, counts = [], [], []
        for i, image_id in enumerate(ids):
            a = annotations[image_id]
            g = a.labels == c
            boxes.append(a.boxes[g])
            difficult.append(a.difficult[g])
            counts.append(int(g.sum()))
            npos[i, c] = int((g & ~a.difficult).sum())
        count_arr = np.asarray(counts, dtype=np.int64)
        g_difficult = np.concatenate([np.zeros(0, dtype=bool), *difficult])
        d = np.flatnonzero(dets[:, 5] == c)
        d = d[np.argsort(-dets[d, 4], kind="stable")]
        ovmax, gmax = _best_overlaps(dets[d, :4], det_img[d], np.concatenate([np.zeros((0, 4)), *boxes]),
                                     np.cumsum(count_arr) - count_arr, count_arr)
        tp, ignored = _match_flags(ovmax, gmax, g_difficult, iou_threshold)
        classes.append(ClassMatches(det_img[d][~ignored], tp[~ignored]))
    return Matches(tuple(ids), tuple(class_names), npos, tuple(classes))
