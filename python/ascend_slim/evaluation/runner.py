"""Running a detector over an evaluation data set: detections per image, and their VOC scores.

This is the library behind ``ascend-slim eval`` and the per-epoch validation of training. The detector is
any :class:`~ascend_slim.Detector` (a file on any backend, or an in-memory model through
``TorchBackend.from_model``); it is never modified.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from ..classes import class_map
from ..data.voc import Annotation
from ..errors import AscendSlimError
from ..imageio import ImageReadError
from .metrics import EvalResult, score_detections


class EvalDataset(Protocol):
    """What evaluation reads from a data set (:class:`~ascend_slim.data.voc.VOCDataset` is one)."""

    ids: list[str]
    annotations: dict[str, Annotation]
    class_names: tuple[str, ...]

    def image_path(self, image_id: str) -> Path: ...


SkipHandler = Callable[[str, str], None]


def _warn_skip(image_id: str, reason: str) -> None:
    warnings.warn(f"skipped {image_id}: {reason}", stacklevel=3)


def detect_dataset(detector, dataset: EvalDataset, class_ids: Sequence[int] | None = None,
                   workers: int | None = None, progress: bool = True, strict: bool = False,
                   on_skip: SkipHandler | None = None) -> dict[str, np.ndarray]:
    """Run ``detector`` over every image of ``dataset``; per image id a ``(K, 6)`` array of detections whose
    class column indexes ``dataset.class_names``.

    ``class_ids[j]`` is the detector class that stands for data-set class ``j`` (default: matched by name, a COCO
    model through the exact COCO->VOC map). Other classes are dropped before NMS, like YOLOv5's ``--classes``.

    An image that cannot be read (missing, undecodable, above the pixel limit) is skipped like the data set's
    own bad pairs: it is left out of the result and ``on_skip(image_id, reason)`` is called (default: a
    warning); ``strict=True`` raises instead.
    """
    mapping = list(class_map(detector.names, dataset.class_names) if class_ids is None else class_ids)
    to_target = np.full(len(detector.names), -1, dtype=np.int64)
    to_target[mapping] = np.arange(len(mapping))
    id_of = {str(dataset.image_path(i)): i for i in dataset.ids}
    remaining = list(id_of)
    detections: dict[str, np.ndarray] = {}
    with tqdm(total=len(remaining), desc="eval", unit="img", disable=not progress) as bar:
        while remaining:
            done = 0
            try:
                for dets in detector.stream(remaining, workers=workers, classes=mapping):
                    arr = dets.to_array()
                    arr[:, 5] = to_target[arr[:, 5].astype(np.int64)]
                    detections[id_of[dets.source]] = arr
                    done += 1
                    bar.update()
                remaining = []
            except ImageReadError as exc:  # restart after the bad image (the batches before it are done)
                if strict:
                    raise AscendSlimError(f"{exc} (strict mode stops at the first problem)") from None
                (on_skip or _warn_skip)(id_of[str(exc.path)], str(exc))
                remaining = [p for p in remaining[done:] if p != str(exc.path)]
                bar.update()
    return detections


def evaluate(detector, dataset: EvalDataset, class_ids: Sequence[int] | None = None, workers: int | None = None,
             progress: bool = True, strict: bool = False, on_skip: SkipHandler | None = None) -> EvalResult:
    """VOC metrics of ``detector`` on ``dataset`` (see :func:`detect_dataset` for ``class_ids`` and skipping:
    skipped images are left out of the score, ground truth included).

    For the reference protocol build the detector with :data:`~.protocol.VAL_SETTINGS` (YOLOv5 ``val.py``); a
    model file is evaluated that way by :func:`~.protocol.evaluate_file`.
    """
    detections = detect_dataset(detector, dataset, class_ids=class_ids, workers=workers, progress=progress,
                                strict=strict, on_skip=on_skip)
    annotations = {i: dataset.annotations[i] for i in dataset.ids if i in detections}
    return score_detections(detections, annotations, dataset.class_names)
