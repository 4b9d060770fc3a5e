"""YOLO txt labels (Ultralytics format): one object per line, ``class cx cy w h`` normalised to [0, 1].

Detection output adds a sixth column, the score (``detect --save-txt``). Both directions live here so the
writer and the reader agree on the format, and so does the Ultralytics rule for where an image's label file
is (:func:`label_path`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import AscendSlimError


def format_yolo_lines(boxes: np.ndarray, class_ids: Sequence[int], image_shape: tuple[int, int],
                      scores: Sequence[float] | None = None) -> str:
    """Text of a label file: ``boxes`` ``(N, 4)`` x1 y1 x2 y2 pixels of an image ``(height, width)``;
    with ``scores`` each line ends with the score (5 decimals)."""
    h, w = image_shape
    lines = []
    for i, (b, c) in enumerate(zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), class_ids)):
        line = f"{int(c)} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} " \
               f"{(b[3] - b[1]) / h:.6f}"
        if scores is not None:
            line += f" {float(scores[i]):.5f}"
        lines.append(line + "\n")
    return "".join(lines)


def label_path(image: str | Path) -> Path:
    """Where Ultralytics keeps an image's label file: the last ``images`` folder of its path replaced by
    ``labels`` and the suffix by ``.txt`` (beside the image if no folder is called ``images``)."""
    parts = list(Path(image).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_yolo_labels(path: str | Path, nc: int | None = None) -> np.ndarray:
    """``(N, 5)`` float32 rows ``class cx cy w h`` of a label file (a missing file means no objects).

    Raises AscendSlimError naming the file and line for a row that is not 5 (or 6, with a score) finite
    numbers, a class id that is not a non-negative integer below ``nc``, or a box outside ``[0, 1]``.
    """
    path = Path(path)
    if not path.exists():
        return np.zeros((0, 5), dtype=np.float32)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AscendSlimError(f"cannot read label file {path}: {exc}") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise AscendSlimError(f"label file {path} line {lineno}: {line.strip()!r} is not numbers") from None
        if len(values) not in (5, 6) or not all(math.isfinite(v) for v in values):
            raise AscendSlimError(f"label file {path} line {lineno}: expected 'class cx cy w h', got {line.strip()!r}")
        cls, cx, cy, bw, bh = values[:5]
        if cls < 0 or cls != int(cls) or (nc is not None and cls >= nc):
            raise AscendSlimError(f"label file {path} line {lineno}: class {values[0]:g} is not a class id"
                                  + (f" below {nc}" if nc is not None else ""))
        if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < bw <= 1 and 0 < bh <= 1):
            raise AscendSlimError(f"label file {path} line {lineno}: box {values[1:5]} is not normalised to [0, 1]")
        rows.append(values[:5])
    return np.asarray(rows, dtype=np.float32).reshape(-1, 5)
