"""The one way ascend-slim opens an onnxruntime session, and the ONNX input type -> numpy dtype table.

The Detector's onnxruntime backend, latency measurement (``report``, the slim recipe, the prune planner's
measured latency) and ONNX cost counting all open sessions here, so "1 thread" means the same session
settings everywhere: ``threads`` intra-op threads, one inter-op thread, sequential execution.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import AscendSlimError

ONNX_NUMPY_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}


def numpy_dtype(onnx_type: str) -> type:
    """The numpy type of an onnxruntime input type string (``tensor(float16)`` -> float16; float32 otherwise)."""
    return ONNX_NUMPY_DTYPES.get(onnx_type, np.float32)


def open_session(model: str | Path | bytes, threads: int | None = 1,
                 providers: Sequence[str | tuple[str, dict]] | None = None):
    """An ``onnxruntime.InferenceSession`` of ``model`` (a path or serialized bytes) with ``threads`` intra-op
    threads (0 or None: onnxruntime's default, all cores) on ``providers`` (default: the CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    available = ort.get_available_providers()
    providers = list(providers) if providers else ["CPUExecutionProvider"]
    unknown = [name for name in (p if isinstance(p, str) else p[0] for p in providers) if name not in available]
    if unknown:
        raise AscendSlimError(f"onnxruntime provider(s) {', '.join(unknown)} not available; available: "
                              f"{', '.join(available)}")
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt or unreadable models
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        name = "an in-memory model" if isinstance(model, bytes) else model
        raise AscendSlimError(f"cannot load ONNX model {name}: {first}") from None
