"""Per-class detection files in the Ascend sample's format: ``det_test_<class>.txt``.

Each line is ``<image_id> <score> <x0> <y0> <x1> <y1>``, single spaces, floats printed with ``%f``, pixel
coordinates of the original image, 0-based (ACP YOLOv5Prune ``main.cpp`` ``SaveTxt``; the same line format
as darknet/py-faster-rcnn ``comp4_det_test_<class>.txt``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from ..classes import coco_name_for_voc
from ..errors import AscendSlimError
from ..fileio import atomic_output

PREFIX = "det_test_"


def det_file_name(class_name: str) -> str:
    return f"{PREFIX}{class_name}.txt"


def _format_lines(detections: Mapping[str, np.ndarray], num_classes: int) -> list[list[str]]:
    lines: list[list[str]] = [[] for _ in range(num_classes)]
    for image_id, det in detections.items():
        if not image_id or any(ch.isspace() for ch in image_id):
            raise AscendSlimError(f"image id {image_id!r} cannot be written to a det file (empty or has spaces)")
        for x0, y0, x1, y1, score, cls in np.asarray(det, dtype=np.float64).reshape(-1, 6):
            c = int(cls)
            if c != cls or not 0 <= c < num_classes:
                raise ValueError(f"class id {cls} of image {image_id} is not in [0, {num_classes})")
            lines[c].append(f"{image_id} {score:f} {x0:f} {y0:f} {x1:f} {y1:f}\n")
    return lines


def round_as_written(detections: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The detections with scores and coordinates rounded to the 6 decimals that ``%f`` writes.

    Scoring these gives exactly what scoring the written files gives (``--from-txt``): rounding can tie
    scores, and ties then break the same way. Exact for values that come from float32 (x * 10**6 is then
    exact in float64, so rounding half to even matches ``%f``); other float64 values can differ in rare
    half-way cases.
    """
    out = {}
    for image_id, det in detections.items():
        det = np.asarray(det, dtype=np.float64).reshape(-1, 6).copy()
        det[:, :5] = np.round(det[:, :5], 6)
        out[image_id] = det
    return out


def write_det_files(
    out_dir: str | Path, detections: Mapping[str, np.ndarray], class_names: Sequence[str]
) -> list[Path]:
    """Write one ``det_test_<class>.txt`` per class (empty when the class has no detection).

    ``detections`` maps image id to ``(K, 6)`` ``[x1, y1, x2, y2, score, class_id]`` in 0-based pixels. The
    folder's contents are made fresh: all files are staged as temporaries first, then every stale
    ``det_test_*.txt`` is removed and the new files are renamed into place, so nothing is ever appended to an
    old file and a failure leaves no half-written file. Other files in the folder are left alone.
    """
    out_dir = Path(out_dir)
    lines = _format_lines(detections, len(class_names))
    targets = [out_dir / det_file_name(name) for name in class_names]
    with ExitStack() as stack:  # every file staged first; all renamed into place only if all were written
        staged = [stack.enter_context(atomic_output(path)) for path in targets]
        for tmp, class_lines in zip(staged, lines):
            tmp.write_text("".join(class_lines), encoding="utf-8")
        for stale in set(out_dir.glob(f"{PREFIX}*.txt")) - set(targets):
            stale.unlink()
    return targets


def _parse_det_file(path: Path, class_id: int, rows: dict[str, list[list[float]]]) -> None:
    with open(path, encoding="utf-8-sig") as f:  # -sig: a leading byte-order mark is dropped
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                if len(parts) != 6:
                    raise ValueError
                score, x0, y0, x1, y1 = (float(p) for p in parts[1:])
                if not all(math.isfinite(v) for v in (score, x0, y0, x1, y1)):
                    raise ValueError
            except ValueError:
                raise AscendSlimError(
                    f"{path}:{lineno}: expected '<image_id> <score> <x0> <y0> <x1> <y1>' with finite numbers, "
                    f"got {line.strip()!r}"
                ) from None
            rows.setdefault(parts[0], []).append([x0, y0, x1, y1, score, class_id])


def read_det_files(det_dir: str | Path, class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``det_test_<class>.txt`` files back into ``{image_id: (K, 6) array}`` (0-based, as written).

    For a VOC class the COCO-named file is accepted too (``det_test_airplane.txt`` for ``aeroplane``), so files
    written on a device by a COCO model can be scored. A class without a file has no detections; files of
    other classes are ignored. No file for any class is an error.
    """
    det_dir = Path(det_dir)
    if not det_dir.is_dir():
        raise AscendSlimError(f"detection folder not found: {det_dir}")
    rows: dict[str, list[list[float]]] = {}
    found = 0
    for c, name in enumerate(class_names):
        for candidate in dict.fromkeys((name, coco_name_for_voc(name))):
            path = det_dir / det_file_name(candidate)
            if path.is_file():
                _parse_det_file(path, c, rows)
                found += 1
                break
    if not found:
        raise AscendSlimError(
            f"no {PREFIX}<class>.txt file in {det_dir} for any of the {len(class_names)} classes "
            f"({', '.join(class_names[:3])}, ...)"
        )
    return {image_id: np.asarray(r, dtype=np.float64) for image_id, r in rows.items()}


def unknown_image_ids(detections: Mapping[str, np.ndarray], image_ids: Sequence[str], source: str,
                      split: str) -> list[str]:
    """The image ids of ``detections`` that are not in ``image_ids`` (sorted); raises AscendSlimError when there
    are detections but none of them is for a listed image (files of another split or data set)."""
    listed = set(image_ids)
    unknown = sorted(set(detections) - listed)
    if detections and len(unknown) == len(detections):
        raise AscendSlimError(f"none of the {len(unknown)} image ids in {source} is in {split} (first: "
                              f"{unknown[0]}): pass the --split/--year the files were made for")
    return unknown
