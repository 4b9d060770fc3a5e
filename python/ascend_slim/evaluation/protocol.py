"""The validation protocol and "evaluate this model file on this split": the one home of both.

:data:`VAL_SETTINGS` are YOLOv5 ``val.py``'s detector settings (square letterbox, conf 0.001, IoU 0.6,
multi-label, 300 detections), used by training's per-epoch validation, ``eval``, ``report`` and the slim
recipe. :func:`evaluation_set` builds the images and ground truth of a split the same way for all of them,
and :func:`evaluate_file` runs a model file over them and scores exactly what ``eval`` writes into its
detection files (scores and boxes rounded to 6 decimals), so every caller reports the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import EvalResult
from .runner import EvalDataset, SkipHandler, detect_dataset

VAL_SETTINGS: dict[str, Any] = dict(conf_thres=0.001, iou_thres=0.6, max_det=300, multi_label=True, rect=False)
HEADLINE_METRICS = ("ap50_voc07", "ap50", "ap50_95")  # what reports and the slim recipe quote


def evaluation_set(data: str | Path, split: str, class_names: Sequence[str] | None = None) -> EvalDataset:
    """The evaluation images of ``split`` of ``data`` (a VOCdevkit folder: every year that has the split; or an
    Ultralytics data yaml), scored against ``class_names`` (default: VOC's, or the yaml's)."""
    from ..data.samples import load_samples

    return load_samples(data, split, class_names=class_names).eval_dataset()


@dataclass
class FileEvaluation:
    """What :func:`evaluate_file` found: the scores, the (rounded) detections per image id, and the model
    described as ``path (backend, WxH)``."""

    result: EvalResult
    detections: dict[str, np.ndarray]
    source: str


def evaluate_file(model: str | Path | None, dataset: EvalDataset, *, img_size: int | None = None,
                  backend: str = "auto",
                  device: str = "cpu", num_threads: int | None = 1, workers: int | None = None,
                  strict: bool = False, on_skip: SkipHandler | None = None, progress: bool = True,
                  **settings: Any) -> FileEvaluation:
    """Run the model file ``model`` (``.onnx``, ``.om`` or ``.pt``; None: the :class:`~ascend_slim.Detector`
    default; ``img_size`` None: the model's own, 640 for ``.pt``) over ``dataset`` with :data:`VAL_SETTINGS`
    (``settings`` override them, e.g. ``conf_thres``) and score the detections rounded as ``eval``'s detection
    files hold them. ``num_threads`` 1: one single-threaded inference per worker. Skipping as
    :func:`~.runner.detect_dataset`."""
    from ..detector import Detector
    from .detfiles import round_as_written
    from .metrics import score_detections

    options = {**VAL_SETTINGS, **settings}
    with Detector(model, backend=backend, device=device, img_size=img_size, num_threads=num_threads,
                  streams=workers or os.cpu_count(), **options) as detector:
        detections = detect_dataset(detector, dataset, workers=workers, progress=progress, strict=strict,
                                    on_skip=on_skip)
        source = f"{detector.weights} ({detector.backend.name}, {detector.img_size[1]}x{detector.img_size[0]})"
    detections = round_as_written(detections)
    annotations = {i: dataset.annotations[i] for i in dataset.ids if i in detections}
    return FileEvaluation(score_detections(detections, annotations, dataset.class_names), detections, source)


def headline_metrics(result: EvalResult) -> dict[str, float]:
    """The :data:`HEADLINE_METRICS` means of ``result`` as plain floats."""
    means = result.means
    return {key: float(means[key]) for key in HEADLINE_METRICS}
