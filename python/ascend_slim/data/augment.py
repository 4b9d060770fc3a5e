"""Training augmentations parameterised as YOLOv5 v7.0 does them (numpy and OpenCV only, no torch).

Images are BGR ``uint8`` HxWx3 arrays. Labels are ``(N, 5)`` float rows ``[class, x1, y1, x2, y2]`` in pixels
(:func:`xywhn_to_xyxy` / :func:`xyxy_to_xywhn` convert from and to the normalised YOLO rows), except for the
flips, which work on normalised rows as YOLOv5 applies them last. Every random draw comes from the
``numpy.random.Generator`` passed in, so a given generator state always gives the same result.

What each step does (the hyperparameter names are those of YOLOv5's hyp yaml, see :data:`AUGMENT_HYP`):

* :func:`mosaic` -- four images around a random centre in a ``2s x 2s`` canvas filled with 114 (YOLOv5
  ``load_mosaic``); labels clipped to the canvas.
* :func:`random_perspective` -- ``M = T @ S @ R @ P @ C``: centre, perspective (``perspective``), rotation
  and scale (``degrees``, ``1 +- scale``), shear (``shear`` degrees), translation (``0.5 +- translate`` of the
  output size); one ``warpAffine``/``warpPerspective`` with border 114; boxes moved by their four corners,
  clipped to the output, and kept only if :func:`box_candidates` accepts them.
* :func:`augment_hsv` -- random gains ``1 + U(-1, 1) * (hsv_h, hsv_s, hsv_v)`` applied through lookup tables
  in OpenCV's 8-bit HSV (hue modulo 180).
* :func:`fliplr` / :func:`flipud` with probabilities ``fliplr`` / ``flipud``.
* :func:`mixup` -- a blend ``r * a + (1 - r) * b`` with ``r ~ Beta(32, 32)`` and both label sets (probability
  ``mixup``, applied to mosaics).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from ..errors import AscendSlimError

PAD_VALUE = 114  # grey of the letterbox, mosaic canvas and warp border (YOLOv5)

# The augmentation keys of YOLOv5's hyp.scratch-low.yaml and their values there.
AUGMENT_HYP: dict[str, float] = {
    "hsv_h": 0.015,
    "hsv_s": 0.7,
    "hsv_v": 0.4,
    "degrees": 0.0,
    "translate": 0.1,
    "scale": 0.5,
    "shear": 0.0,
    "perspective": 0.0,
    "flipud": 0.0,
    "fliplr": 0.5,
    "mosaic": 1.0,
    "mixup": 0.0,
}
_PROBABILITIES = ("flipud", "fliplr", "mosaic", "mixup")


def augment_hyp(hyp: Mapping[str, float] | None = None) -> dict[str, float]:
    """:data:`AUGMENT_HYP` updated with the augmentation keys of ``hyp`` (other keys, e.g. ``lr0``, ignored).

    Raises AscendSlimError for a value that is not a finite number >= 0, or a probability above 1.
    """
    merged = dict(AUGMENT_HYP)
    for key in AUGMENT_HYP.keys() & dict(hyp or {}).keys():
        value = hyp[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise AscendSlimError(f"hyperparameter {key} is {value!r}: expected a finite number >= 0")
        if key in _PROBABILITIES and value > 1:
            raise AscendSlimError(f"hyperparameter {key} is {value}: a probability must be in [0, 1]")
        merged[key] = float(value)
    return merged


def xywhn_to_xyxy(labels: np.ndarray, w: float, h: float, padw: float = 0.0, padh: float = 0.0) -> np.ndarray:
    """``[class, cx, cy, w, h]`` normalised to a ``w x h`` image -> ``[class, x1, y1, x2, y2]`` pixels, shifted
    by the image's offset ``(padw, padh)`` in a larger canvas. Returns float64 rows."""
    out = np.array(labels, dtype=np.float64).reshape(-1, 5)
    cx, cy, bw, bh = out[:, 1] * w, out[:, 2] * h, out[:, 3] * w, out[:, 4] * h
    out[:, 1], out[:, 2] = cx - bw / 2 + padw, cy - bh / 2 + padh
    out[:, 3], out[:, 4] = cx + bw / 2 + padw, cy + bh / 2 + padh
    return out


def xyxy_to_xywhn(labels: np.ndarray, w: float, h: float, eps: float = 1e-3) -> np.ndarray:
    """Pixel ``[class, x1, y1, x2, y2]`` clipped to ``[0, w - eps] x [0, h - eps]`` -> normalised
    ``[class, cx, cy, w, h]`` float32 (YOLOv5 ``xyxy2xywhn(..., clip=True, eps=1e-3)``)."""
    xyxy = np.array(labels, dtype=np.float64).reshape(-1, 5)[:, 1:]
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w - eps)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h - eps)
    out = np.empty((len(xyxy), 5), dtype=np.float32)
    out[:, 0] = np.asarray(labels).reshape(-1, 5)[:, 0]
    out[:, 1] = (xyxy[:, 0] + xyxy[:, 2]) / 2 / w
    out[:, 2] = (xyxy[:, 1] + xyxy[:, 3]) / 2 / h
    out[:, 3] = (xyxy[:, 2] - xyxy[:, 0]) / w
    out[:, 4] = (xyxy[:, 3] - xyxy[:, 1]) / h
    return out


def resize_long_side(img: np.ndarray, size: int) -> np.ndarray:
    """Resize (bilinear) so the longer side is ``size``, as YOLOv5 ``load_image`` does for training; the image
    itself if it already is."""
    h0, w0 = img.shape[:2]
    r = size / max(h0, w0)
    if r == 1:
        return img
    return cv2.resize(img, (max(1, round(w0 * r)), max(1, round(h0 * r))), interpolation=cv2.INTER_LINEAR)


def mosaic(images: Sequence[np.ndarray], labels: Sequence[np.ndarray], size: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Four images (each at most ``size`` on its longer side) around a random centre of a ``2 size`` square.

    The centre ``(xc, yc)`` is uniform in ``[size / 2, 3 size / 2)``; image 0 ends at the centre from the top
    left, 1 starts there to the top right, 2 to the bottom left, 3 to the bottom right, each cropped at the
    canvas edge. ``labels`` are normalised YOLO rows per image; returns the canvas and pixel
    ``[class, x1, y1, x2, y2]`` rows clipped to ``[0, 2 size]``.
    """
    if len(images) != 4 or len(labels) != 4:
        raise ValueError("mosaic takes exactly 4 images and 4 label arrays")
    s = size
    xc, yc = (int(v) for v in rng.uniform(s / 2, 3 * s / 2, size=2))
    canvas = np.full((2 * s, 2 * s, 3), PAD_VALUE, dtype=np.uint8)
    placed = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        h, w = img.shape[:2]
        padw = xc - w if i in (0, 2) else xc  # the image's offset: left tiles end at the centre, right ones start
        padh = yc - h if i in (0, 1) else yc
        x1a, y1a, x2a, y2a = max(padw, 0), max(padh, 0), min(padw + w, 2 * s), min(padh + h, 2 * s)
        canvas[y1a:y2a, x1a:x2a] = img[y1a - padh:y2a - padh, x1a - padw:x2a - padw]
        placed.append(xywhn_to_xyxy(lab, w, h, padw, padh))
    out = np.concatenate(placed, axis=0)
    np.clip(out[:, 1:], 0, 2 * s, out=out[:, 1:])
    return canvas, out


def box_candidates(box1: np.ndarray, box2: np.ndarray, wh_thr: float = 2, ar_thr: float = 100,
                   area_thr: float = 0.1, eps: float = 1e-16) -> np.ndarray:
    """Which augmented boxes to keep (YOLOv5 ``box_candidates``): ``box1`` before (scaled by the augmentation's
    scale), ``box2`` after, both ``(4, n)`` x1 y1 x2 y2. Kept: width and height > ``wh_thr`` pixels, area ratio
    > ``area_thr``, aspect ratio < ``ar_thr``."""
    w1, h1 = box1[2] - box1[0], box1[3] - box1[1]
    w2, h2 = box2[2] - box2[0], box2[3] - box2[1]
    ar = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (ar < ar_thr)


def random_perspective(img: np.ndarray, labels: np.ndarray, rng: np.random.Generator, degrees: float = 10,
                       translate: float = 0.1, scale: float = 0.1, shear: float = 10, perspective: float = 0.0,
                       border: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Random projective warp of ``img`` and its pixel ``[class, x1, y1, x2, y2]`` labels (see module docstring).

    The output is ``img``'s size plus ``2 * border`` (``(y, x)``; negative borders crop, e.g. ``-s // 2`` turns
    a ``2s`` mosaic into ``s``). With all parameters 0 and no border the image and labels are returned as they
    are. Returns the warped image and the labels that survive, as float64.
    """
    height, width = img.shape[0] + 2 * border[0], img.shape[1] + 2 * border[1]
    u = rng.uniform(-1.0, 1.0, size=6)  # perspective x, y; angle; scale; shear x, y
    center = np.array([[1, 0, -img.shape[1] / 2], [0, 1, -img.shape[0] / 2], [0, 0, 1]])
    persp = np.eye(3)
    persp[2, 0], persp[2, 1] = u[0] * perspective, u[1] * perspective
    s = 1 + u[3] * scale
    rot = np.eye(3)
    rot[:2] = cv2.getRotationMatrix2D(angle=u[2] * degrees, center=(0, 0), scale=s)
    sh = np.eye(3)
    sh[0, 1], sh[1, 0] = math.tan(u[4] * shear * math.pi / 180), math.tan(u[5] * shear * math.pi / 180)
    tr = np.eye(3)
    tr[0, 2], tr[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate, size=2) * (width, height)
    m = tr @ sh @ rot @ persp @ center  # applied right to left
    if border != (0, 0) or (m != np.eye(3)).any():
        if perspective:
            img = cv2.warpPerspective(img, m, dsize=(width, height), borderValue=(PAD_VALUE,) * 3)
        else:
            img = cv2.warpAffine(img, m[:2], dsize=(width, height), borderValue=(PAD_VALUE,) * 3)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1, 5)
    n = len(labels)
    if not n:
        return img, labels
    xy = np.ones((n * 4, 3))
    xy[:, :2] = labels[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(n * 4, 2)  # corners x1y1, x2y2, x1y2, x2y1
    xy = xy @ m.T
    xy = (xy[:, :2] / xy[:, 2:3] if perspective else xy[:, :2]).reshape(n, 8)
    x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
    new = np.stack([x.min(1).clip(0, width), y.min(1).clip(0, height),
                    x.max(1).clip(0, width), y.max(1).clip(0, height)], axis=1)
    keep = box_candidates(labels[:, 1:5].T * s, new.T)
    out = labels[keep]
    out[:, 1:5] = new[keep]
    return img, out


def augment_hsv(img: np.ndarray, rng: np.random.Generator, hgain: float = 0.5, sgain: float = 0.5,
                vgain: float = 0.5) -> np.ndarray:
    """A BGR image with hue, saturation and value scaled by ``1 + U(-1, 1) * gain`` each, through lookup
    tables (hue wraps modulo 180). All gains 0: nothing is drawn and ``img`` itself is returned."""
    if not (hgain or sgain or vgain):
        return img
    r = rng.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    x = np.arange(256, dtype=np.float64)
    lut = np.empty((256, 1, 3), dtype=np.uint8)  # one table per channel, applied in one pass
    lut[:, 0, 0] = (x * r[0]) % 180
    lut[:, 0, 1] = np.clip(x * r[1], 0, 255)
    lut[:, 0, 2] = np.clip(x * r[2], 0, 255)
    return cv2.cvtColor(cv2.LUT(cv2.cvtColor(img, cv2.COLOR_BGR2HSV), lut), cv2.COLOR_HSV2BGR)


def fliplr(img: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; normalised ``[class, cx, cy, w, h]`` labels get ``cx -> 1 - cx``."""
    labels = np.array(labels, dtype=np.float32).reshape(-1, 5)
    labels[:, 1] = 1 - labels[:, 1]
    return cv2.flip(img, 1), labels


def flipud(img: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror up-down; normalised ``[class, cx, cy, w, h]`` labels get ``cy -> 1 - cy``."""
    labels = np.array(labels, dtype=np.float32).reshape(-1, 5)
    labels[:, 2] = 1 - labels[:, 2]
    return cv2.flip(img, 0), labels


def mixup(img: np.ndarray, labels: np.ndarray, img2: np.ndarray, labels2: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """MixUp of two same-sized images: ``r * img + (1 - r) * img2`` (rounded), ``r ~ Beta(32, 32)``, with
    both label sets."""
    r = rng.beta(32.0, 32.0)
    return cv2.addWeighted(img, r, img2, 1 - r, 0.0), np.concatenate((labels, labels2), axis=0)
