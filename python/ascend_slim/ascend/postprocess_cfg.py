"""MindX SDK YOLOv5 postprocess configs (``KEY=value`` files) for both inference routes, and the label file.

* ``modelinfer``: the sample's ``mxpi_modelinfer`` + ``libMpYOLOv5PostProcessor.so`` (``MODEL_TYPE=1``).
* ``tensorinfer``: ``mxpi_tensorinfer`` + ``mxpi_objectpostprocessor`` + ``libyolov3postprocess.so`` with
  ``YOLO_VERSION=5``, ``FRAMEWORK=PyTorch``, ``MODEL_TYPE=2`` (NCHWC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import AscendSlimError
from ..meta import ModelMeta

ROUTES = ("modelinfer", "tensorinfer")


@dataclass(frozen=True)
class Thresholds:
    """Score (class prob x objectness), objectness and per-class NMS IoU thresholds (all strict ``>``)."""

    score: float
    objectness: float
    iou: float

    def __post_init__(self) -> None:
        for name, value in (("score", self.score), ("objectness", self.objectness), ("IoU", self.iou)):
            if not 0.0 <= value <= 1.0:
                raise AscendSlimError(f"{name} threshold {value} is outside 0..1")


DETECT_THRESHOLDS = Thresholds(score=0.4, objectness=0.4, iou=0.5)  # the sample's yolov5_detect.cfg
EVAL_THRESHOLDS = Thresholds(score=0.01, objectness=0.01, iou=0.5)  # the sample's yolov5_eval.cfg


def _number(value: float) -> str:
    return np.format_float_positional(np.float32(value), trim="-")


def biases(meta: ModelMeta) -> list[float]:
    """Anchor w,h pairs in input pixels, smallest stride first (the order the postprocessors expect)."""
    order = np.argsort(np.asarray(meta.strides, dtype=np.float64), kind="stable")
    return [float(v) for v in meta.anchors[order].reshape(-1)]


def postprocess_cfg(meta: ModelMeta, thresholds: Thresholds, route: str) -> dict[str, str]:
    """The key/value pairs of a postprocess config for ``route`` (``modelinfer`` or ``tensorinfer``)."""
    if route not in ROUTES:
        raise AscendSlimError(f"unknown MindX route {route!r}: choose one of {', '.join(ROUTES)}")
    if meta.head != "raw":
        raise AscendSlimError("MindX YOLOv5 postprocessors need the raw-head export (three [1,3,h,w,5+nc] outputs)")
    values = biases(meta)
    cfg = {
        "CLASS_NUM": str(meta.nc),
        "BIASES_NUM": str(len(values)),
        "BIASES": ",".join(_number(v) for v in values),
        "SCORE_THRESH": _number(thresholds.score),
        "OBJECTNESS_THRESH": _number(thresholds.objectness),
        "IOU_THRESH": _number(thresholds.iou),
        "YOLO_TYPE": str(len(meta.strides)),
        "ANCHOR_DIM": str(meta.na),
        "MODEL_TYPE": "1" if route == "modelinfer" else "2",
        "RESIZE_FLAG": "0",
    }
    if route == "tensorinfer":
        cfg.update({"YOLO_VERSION": "5", "FRAMEWORK": "PyTorch"})
    return cfg


def render_cfg(cfg: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in cfg.items())


def parse_cfg(text: str) -> dict[str, str]:
    """Parse a ``KEY=value`` postprocess config (blank lines and ``#`` lines ignored)."""
    cfg: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise AscendSlimError(f"malformed postprocess config line {line!r}: expected KEY=value")
        cfg[key.strip()] = value.strip()
    return cfg


def render_labels(names: Sequence[str]) -> str:
    """Label file: one class name per line in class-id order."""
    bad = [n for n in names if not n.strip() or "\n" in n or n.lstrip().startswith("#")]
    if bad:
        raise AscendSlimError(f"class name {bad[0]!r} cannot be written to a MindX label file")
    return "".join(f"{name}\n" for name in names)
