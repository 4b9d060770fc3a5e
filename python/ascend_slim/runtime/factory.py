"""Pick and open the backend for a weights file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import AscendSlimError
from .base import Backend

BACKENDS = ("auto", "onnxruntime", "torch", "acl", "mindx")


def open_backend(weights: Path, backend: str = "auto", img_size: int | tuple[int, int] = 640,
                 providers: Sequence[str] | None = None, num_threads: int | None = None) -> Backend:
    """Open ``weights`` (.onnx, .pt or .om) with the named backend; ``auto`` picks by file type.

    ``.pt`` checkpoints run through a cached ONNX export with dynamic height and width on onnxruntime (or in
    PyTorch with ``torch``);
    ``.om`` files need an Ascend backend (``acl`` or ``mindx``).
    """
    if backend not in BACKENDS:
        raise AscendSlimError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    suffix = weights.suffix.lower()
    if backend == "torch":
        if suffix != ".pt":
            raise AscendSlimError(f"backend 'torch' runs .pt checkpoints, not {weights.name}")
        from .torch_backend import TorchBackend

        return TorchBackend(weights, img_size=img_size)
    if suffix == ".om" or backend in ("acl", "mindx"):
        from ..ascend.backends import open_ascend_backend

        return open_ascend_backend(weights, kind=backend)
    if suffix == ".pt":
        from ..weights import onnx_for_checkpoint

        weights = onnx_for_checkpoint(weights, img_size, dynamic=True)
    if weights.suffix.lower() != ".onnx":
        raise AscendSlimError(f"cannot run {weights.name} with onnxruntime: expected a .onnx or .pt file")
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(weights, providers=providers, num_threads=num_threads)
