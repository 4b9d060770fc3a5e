"""Running a detector over an evaluation data set: detections per image, and their VOC scores.

This is the library behind ``ascend-slim eval`` and the per-epoch validation of training. The detector is
any :class:`~ascend_slim.Detector` (a file on any backend, or an in-memory model through
``TorchBackend.from_model``); it is never modified.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from ..classes import class_map
from ..data.voc import Annotation
from .metrics import EvalResult, score_detections


class EvalDataset(Protocol):
    """What evaluation reads from a data set (:class:`~ascend_slim.data.voc.VOCDataset` is one)."""

    ids: list[str]
    annotations: dict[str, Annotation]
    class_names: tuple[str, ...]

    def image_path(self, image_id: str) -> Path: ...


def detect_dataset(detector, dataset: EvalDataset, class_ids: Sequence[int] | None = None,
                   workers: int | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Run ``detector`` over every image of ``dataset``; per image id a ``(K, 6)`` array of detections whose
    class column indexes ``dataset.class_names``.

    ``class_ids[j]`` is the detector class that stands for data-set class ``j`` (default: matched by name, a COCO
    model through the exact COCO->VOC map). Other classes are dropped before NMS, like YOLOv5's ``--classes``.
    """
    mapping = list(class_map(detector.names, dataset.class_names) if class_ids is None else class_ids)
    to_target = np.full(len(detector.names), -1, dtype=np.int64)
    to_target[mapping] = np.arange(len(mapping))
    paths = [dataset.image_path(i) for i in dataset.ids]
    stream = detector.stream(paths, workers=workers, classes=mapping)
    detections: dict[str, np.ndarray] = {}
    for image_id, dets in zip(dataset.ids, tqdm(stream, total=len(paths), desc="eval", unit="img",
                                                disable=not progress)):
        arr = dets.to_array()
        arr[:, 5] = to_target[arr[:, 5].astype(np.int64)]
        detections[image_id] = arr
    return detections


def evaluate(detector, dataset: EvalDataset, class_ids: Sequence[int] | None = None, workers: int | None = None,
             progress: bool = True) -> EvalResult:
    """VOC metrics of ``detector`` on ``dataset`` (see :func:`detect_dataset` for ``class_ids``).

    For the reference protocol build the detector with ``conf_thres=0.001, iou_thres=0.6, max_det=300,
    multi_label=True, rect=False`` (YOLOv5 ``val.py``).
    """
    detections = detect_dataset(detector, dataset, class_ids=class_ids, workers=workers, progress=progress)
    return score_detections(detections, dataset.annotations, dataset.class_names)
