"""Evaluation output: the per-class terminal table and ``results.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from .metrics import METRIC_LABELS, EvalResult

_SHORT = {"ap50_voc07": "AP50-07", "ap50": "AP50", "ap55_sample": "AP55-smp", "ap50_95": "AP50:95"}


def format_table(result: EvalResult) -> str:
    """Per-class rows (ground truth, detections, the four APs), the mean row and a legend."""
    name_width = max(8, *(len(n) for n in result.class_names)) + 2
    columns = "".join(f"{_SHORT[m]:>10}" for m in METRIC_LABELS)
    lines = [f"{'class':<{name_width}}{'GT':>6}{'dets':>9}{columns}"]

    def cell(value: float) -> str:
        return f"{'-' if math.isnan(value) else f'{value:.3f}':>10}"

    for c, name in enumerate(result.class_names):
        values = "".join(cell(result.per_class(m)[c]) for m in METRIC_LABELS)
        lines.append(f"{name:<{name_width}}{result.npos[c]:>6}{result.ndet[c]:>9}{values}")
    lines.append("-" * len(lines[0]))
    means = "".join(cell(result.mean(m)) for m in METRIC_LABELS)
    lines.append(f"{'mean':<{name_width}}{result.npos.sum():>6}{result.ndet.sum():>9}{means}")
    lines.append("")
    lines += [f"{_SHORT[m]:>9} = {label}" for m, label in METRIC_LABELS.items()]
    lines.append(
        f"{result.num_images} images; GT counts non-difficult objects; VOC devkit rules (IoU > t, +1 pixel areas)"
    )
    if result.classes_without_gt:
        lines.append(f"no ground truth (excluded from the means): {', '.join(result.classes_without_gt)}")
    if result.ignored_detections:
        lines.append(f"{result.ignored_detections} detections on images outside the evaluated set were ignored")
    return "\n".join(lines)


def write_json(path: str | Path, result: EvalResult, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``result.to_dict()`` plus ``extra`` top-level entries (settings, skipped images) atomically."""
    data = result.to_dict()
    clash = set(data) & set(extra or {})
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} would overwrite result entries")
    data.update(extra or {})
    path = Path(path)
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path
