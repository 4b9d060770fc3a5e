"""Sane ranges of sizes and counts, checked by the library and used as the CLI's flag types.

Beyond them a run cannot succeed (allocation failures, int64 overflow in the core) or makes no sense.
Each is an inclusive ``(low, high)`` pair.
"""

from __future__ import annotations

from .errors import AscendSlimError

IMAGE_SIZE = (32, 4096)
BATCH_SIZE = (1, 256)
ONNX_OPSET = (9, 20)  # what torch's TorchScript exporter writes for YOLOv5 (ATC takes 11)
VID_STRIDE = (1, 1000)  # keep every N-th video frame
STREAM_TIMEOUT_S = 10.0  # default: an unreachable stream URL fails after this long (also its read timeout)


def check_range(name: str, value: int, bounds: tuple[int, int]) -> None:
    """Raise AscendSlimError naming ``name`` unless ``bounds[0] <= value <= bounds[1]``."""
    low, high = bounds
    if not low <= value <= high:
        raise AscendSlimError(f"{name} must lie in [{low}, {high}], got {value}")
