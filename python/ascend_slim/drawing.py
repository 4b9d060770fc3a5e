"""Draw detections onto images (boxes and ``name score`` labels)."""

from __future__ import annotations

import cv2
import numpy as np

from .detector import Detections

# 20 well-separated BGR colours; class id picks one (cycled).
_PALETTE = np.array([
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
    (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
    (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203),
    (200, 149, 255), (199, 55, 255),
], dtype=np.uint8)


def class_color(class_id: int) -> tuple[int, int, int]:
    return tuple(int(c) for c in _PALETTE[class_id % len(_PALETTE)])


def draw_detections(img: np.ndarray, dets: Detections) -> np.ndarray:
    """A copy of the BGR image with every detection drawn, lowest score first so the best stay on top."""
    out = img.copy()
    thickness = max(1, round(sum(out.shape[:2]) / 2 * 0.003))
    font_scale = thickness / 3
    for det in reversed(list(dets)):
        color = class_color(det.class_id)
        x1, y1, x2, y2 = (round(v) for v in det.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        label = f"{det.name} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, thickness - 1))
        top = y1 - th - base if y1 - th - base >= 0 else y1  # label above the box, or inside when at the edge
        cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), color, -1, cv2.LINE_AA)
        cv2.putText(out, label, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
                    max(1, thickness - 1), cv2.LINE_AA)
    return out
