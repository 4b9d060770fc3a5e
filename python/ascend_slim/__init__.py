"""ascend-slim: prune, compress and deploy YOLOv5 detectors (Ascend 310 via ATC/MindX, CPU via onnxruntime).

Submodules are imported lazily so that the inference path never pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Detector": ("ascend_slim.detector", "Detector"),
    "Detection": ("ascend_slim.detector", "Detection"),
    "AscendSlimError": ("ascend_slim.errors", "AscendSlimError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'ascend_slim' has no attribute {name!r}")
