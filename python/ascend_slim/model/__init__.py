"""YOLOv5 in PyTorch (torch-only package): explicit-spec model, safe checkpoint import, class remapping."""

from .yolo import Detect, YOLOv5

__all__ = ["Detect", "YOLOv5"]
