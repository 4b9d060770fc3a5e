"""The C++ hot path (``ascend_slim._core``): letterbox/preprocess, YOLOv5 decode, NMS, postprocess, box scaling.

Boxes are ``float32`` rows ``[x1, y1, x2, y2, score, class]`` in pixels. Arrays of the wrong dtype and
non-integer colours raise ``TypeError``; wrong shapes, empty arrays, non-integral sizes and out-of-range
settings or values raise ``ValueError``; both name the argument; nothing is silently truncated.
Non-contiguous arrays are accepted and copied once. Every call is thread-safe and releases the GIL while it computes.

Postprocess modes:

* ``"yolov5"`` (default), Ultralytics ``non_max_suppression``: a candidate needs ``obj > obj_thres``
  (default ``conf_thres``) and ``obj * cls > conf_thres``; ``multi_label`` keeps every class over the
  threshold, otherwise the best class only; the ``classes`` filter applies; at most 30,000 candidates (the
  highest scores) enter greedy class-aware NMS (suppress when IoU > ``iou_thres``), then ``max_det`` boxes
  are kept.
* ``"mindx"``, MindX ``libMpYOLOv5PostProcessor``: the same strict ``>`` tests with ``obj_thres``
  (OBJECTNESS_THRESH) and ``conf_thres`` (SCORE_THRESH), always the single best class, per-class NMS, no
  30,000 or ``max_det`` cap (``multi_label``, ``agnostic`` and ``max_det`` are ignored).

Decode: ``xy = (2 sigmoid(t) - 0.5 + grid) * stride``, ``wh = (2 sigmoid(t))^2 * anchor``. Threshold tests
use double-precision sigmoids, after a cheap test of the raw logit against ``logit(threshold)``. Cells with a
NaN logit never yield a box, and infinite or huge logits give finite boxes. Scores sort descending; equal
scores keep candidate order (head, anchor, row, column, class).

Boxes, one rule in every entry point (``nms``, ``postprocess``, ``postprocess_decoded``): a box is kept only
with four finite corners and ``x1 <= x2``, ``y1 <= y2`` (zero width or height allowed). A box with a NaN or
infinite coordinate, inverted corners (``x2 < x1``) or a negative decoded width or height is dropped, never
normalised into a different box.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Union

import numpy as np

from . import _core
from .meta import ImageSize, as_hw

Color = Union[int, Sequence[int]]

__all__ = ["decode", "letterbox", "nms", "postprocess", "postprocess_decoded", "preprocess", "scale_boxes"]


def _color(color: Color) -> list[int]:
    if isinstance(color, (int, np.integer)):
        return [int(color)] * 3
    try:
        return [operator.index(c) for c in color]  # refuses 114.5 rather than truncating it
    except TypeError:
        raise TypeError(f"color: expected an integer or one integer per channel, got {color!r}") from None


def letterbox(img: np.ndarray, size: ImageSize, color: Color = 114, auto: bool = False, scaleup: bool = True,
              stride: int = 32) -> tuple[np.ndarray, float, tuple[int, int]]:
    """YOLOv5 letterbox of a ``uint8`` HxWx3 image to ``size`` (``int`` or ``(height, width)``).

    ``r = min(h'/h, w'/w)`` (at most 1 unless ``scaleup``), resized to ``round(w r) x round(h r)`` (at least
    1 pixel) with bilinear interpolation bit-compatible with ``cv2.resize(..., INTER_LINEAR)``, padded with
    ``color`` (an int or one value per channel), split ``round(d - 0.1)`` / ``round(d + 0.1)``. ``auto`` pads
    only up to the next multiple of ``stride``. Returns ``(image, r, (pad_left, pad_top))``.
    """
    return _core.letterbox(img, size=as_hw(size), color=_color(color), auto=auto, scaleup=scaleup, stride=stride)


def preprocess(images: np.ndarray | Sequence[np.ndarray], size: ImageSize, color: Color = 114, auto: bool = False,
               scaleup: bool = True, stride: int = 32, dtype: np.dtype | type | str = np.float32,
               layout: str = "NCHW") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Letterbox one BGR image or a list of them into one contiguous model input, in a single pass.

    ``dtype`` float32 or float16: RGB scaled to [0, 1]; uint8: RGB 0..255. ``layout`` ``"NCHW"`` or
    ``"NHWC"``. Images may differ in size; with ``auto=True`` they must pad to the same shape. Returns
    ``(tensor, ratios float64 (N,), pads int64 (N, 2) [left, top])``.
    """
    batch = [images] if isinstance(images, np.ndarray) else images
    return _core.preprocess(batch, size=as_hw(size), color=_color(color), auto=auto, scaleup=scaleup, stride=stride,
                            dtype=np.dtype(dtype).name, layout=layout)


def decode(heads: Sequence[np.ndarray], anchors: np.ndarray | Sequence, strides: Sequence[float],
           conf_thres: float = 0.25, multi_label: bool = False, mode: str = "yolov5",
           obj_thres: float | None = None) -> list[np.ndarray]:
    """Candidate boxes of raw YOLOv5 heads, per image, in candidate order (no NMS).

    ``heads``: one float32/float16 array per level, ``[N, na, ny, nx, 5+nc]`` (Ascend out-node layout) or
    ``[N, na*(5+nc), ny, nx]`` (conv layout), pre-sigmoid. ``anchors``: ``(nl, na, 2)`` in input pixels;
    ``strides``: ``nl`` values. Returns ``Kx6 float32`` per image in model-input pixels.
    """
    return _core.decode(heads, anchors=anchors, strides=strides, conf_thres=conf_thres, multi_label=multi_label,
                        mode=mode, obj_thres=obj_thres)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_thres: float = 0.45,
        max_det: int | None = 300, agnostic: bool = False, max_nms: int | None = 30000) -> np.ndarray:
    """Greedy NMS: ``int64`` indices of the kept boxes, highest score first (ties keep input order).

    ``boxes`` ``(K, 4) float32`` x1 y1 x2 y2, ``scores`` ``(K,) float32``, ``classes`` ``(K,)`` integers, or
    floats holding whole numbers small enough to stay distinct in their type (``|id| <= 2**24`` for float32,
    ``2**53`` for float64); other values raise ``ValueError`` rather than being truncated. Only boxes of one
    class suppress each other unless ``agnostic``; a box goes when its IoU with a kept box is ``> iou_thres``.
    At most ``max_nms`` top-scoring boxes enter and ``max_det`` are kept (``None``: no cap). Boxes with a NaN
    score, a non-finite coordinate or inverted corners are dropped (the module's box rule).
    """
    return _core.nms(boxes, scores=scores, classes=classes, iou_thres=iou_thres, max_det=max_det, max_nms=max_nms,
                     agnostic=agnostic)


def postprocess(heads: Sequence[np.ndarray], anchors: np.ndarray | Sequence, strides: Sequence[float],
                conf_thres: float = 0.25, iou_thres: float = 0.45, max_det: int | None = 300,
                multi_label: bool = False, agnostic: bool = False, classes: Sequence[int] | None = None,
                mode: str = "yolov5", obj_thres: float | None = None, num_threads: int = 1) -> list[np.ndarray]:
    """Decode raw heads (see ``decode``) and run NMS; per image ``Kx6 float32`` sorted by score.

    ``classes`` keeps only those class ids (applied before NMS, after best-class selection);
    ``num_threads`` worker threads share the images of the batch (capped at the batch size and the machine's
    hardware threads; when the system refuses a thread, the threads already running do the work).
    """
    return _core.postprocess(heads, anchors=anchors, strides=strides, conf_thres=conf_thres, iou_thres=iou_thres,
                             max_det=max_det, multi_label=multi_label, agnostic=agnostic, classes=classes, mode=mode,
                             obj_thres=obj_thres, num_threads=num_threads)


def postprocess_decoded(pred: np.ndarray, conf_thres: float = 0.25, iou_thres: float = 0.45,
                        max_det: int | None = 300, multi_label: bool = False, agnostic: bool = False,
                        classes: Sequence[int] | None = None, mode: str = "yolov5",
                        obj_thres: float | None = None, num_threads: int = 1) -> list[np.ndarray]:
    """``postprocess`` for an already-decoded output ``[N, K, 5+nc]`` (xywh pixels, sigmoid applied: the
    usual Ultralytics ONNX export), float32 or float16.

    Objectness (every row) and class scores (rows whose objectness passes ``obj_thres``) must be
    probabilities in ``[0, 1]`` (NaN never passes); anything else raises ``ValueError``, as it means logits.
    Rows with a negative width or height, or non-finite coordinates, are dropped (the module's box rule).
    """
    return _core.postprocess_decoded(pred, conf_thres=conf_thres, iou_thres=iou_thres, max_det=max_det,
                                     multi_label=multi_label, agnostic=agnostic, classes=classes, mode=mode,
                                     obj_thres=obj_thres, num_threads=num_threads)


def scale_boxes(dets: np.ndarray, ratio: float, pad: Sequence[float], orig_shape: Sequence[int]) -> np.ndarray:
    """Map ``Kx6 float32`` detections from letterbox to original pixels: ``(x - pad) / ratio``, clipped to
    ``[0, width] x [0, height]`` of ``orig_shape`` ``(height, width)``. Returns a new array."""
    h, w = orig_shape[:2]
    return _core.scale_boxes(dets, ratio=ratio, pad=(float(pad[0]), float(pad[1])), orig_shape=(int(h), int(w)))
