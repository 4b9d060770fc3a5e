"""Pick and open the backend for a weights file."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from ..errors import AscendSlimError
from .base import Backend

ASCEND_BACKENDS = ("acl", "mindx")
BACKENDS = ("auto", "onnxruntime", "openvino", "torch", *ASCEND_BACKENDS)
SDK_MODULES = {"acl": "acl", "mindx": "StreamManagerApi"}  # the Python module that tells an SDK is installed
RUNTIMES = ("onnxruntime", "openvino")  # the CPU runtimes a model can be slimmed for (ascend_slim.cpu_runtimes)


def parse_device(device: str) -> tuple[str, int]:
    """``"cpu"``, ``"cuda[:N]"`` or ``"npu[:N]"`` (an Ascend device) as ``(kind, index)``."""
    kind, _, index = device.strip().lower().partition(":")
    if kind not in ("cpu", "cuda", "npu") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise AscendSlimError(f"unknown device {device!r}: use cpu, cuda[:N] (onnxruntime) or npu[:N] (Ascend)")
    return kind, int(index or 0)


def open_backend(weights: Path, backend: str = "auto", img_size: int | tuple[int, int] | None = None,
                 device: str = "cpu", providers: Sequence[str] | None = None,
                 num_threads: int | None = None, streams: int | None = None) -> Backend:
    """Open ``weights`` (.onnx, .pt, .xml or .om) with the named backend; ``auto`` picks by file type.

    ``device`` is ``cpu`` or ``cuda[:N]`` for onnxruntime (``providers`` overrides it with an explicit
    provider list) and ``npu[:N]`` for the Ascend backends (which take the default ``cpu`` as ``npu:0``).

    ``.pt`` checkpoints run through a cached ONNX export with dynamic height and width on onnxruntime (or in
    PyTorch with ``torch``), nominally at ``img_size`` (None: the size the checkpoint was saved for);
    ``.om`` files need an Ascend backend (``acl`` or ``mindx``). OpenVINO IR ``.xml`` files run with ``openvino``
    (which also takes ``.onnx`` and ``.pt``), ``streams`` inferences in flight (see
    :func:`~.openvino_backend.compile_config`); the other backends ignore ``streams``.
    """
    if backend not in BACKENDS:
        raise AscendSlimError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    suffix = weights.suffix.lower()
    kind, index = parse_device(device)
    ascend = suffix == ".om" or backend in ("acl", "mindx")
    if ascend and kind == "cuda":
        raise AscendSlimError(f"{weights.name} runs on an Ascend device: use --device npu[:N] (default npu:0)")
    if not ascend and kind == "npu":
        raise AscendSlimError(f"device {device} runs Ascend .om models, not {weights.name}: use cpu or cuda[:N]")
    if suffix == ".xml" and backend not in ("auto", "openvino"):
        raise AscendSlimError(f"{weights.name} is an OpenVINO IR: run it with --backend openvino (or auto)")
    if (suffix == ".xml" or backend == "openvino") and kind != "cpu":
        raise AscendSlimError(f"the OpenVINO backend runs on the CPU: use --device cpu, not {device}")
    if suffix == ".pt" and img_size is None:
        from ..model.checkpoint import stored_img_size

        img_size = stored_img_size(weights)
    if backend == "torch":
        if suffix != ".pt":
            raise AscendSlimError(f"backend 'torch' runs .pt checkpoints, not {weights.name}")
        from .torch_backend import TorchBackend

        if kind != "cpu":
            raise AscendSlimError("backend 'torch' is a CPU reference: use --device cpu")
        return TorchBackend.from_weights(weights, img_size=img_size)
    if ascend:
        return open_ascend_backend(weights, kind=backend, device_id=index)
    if suffix == ".pt":
        from ..weights import onnx_for_checkpoint

        weights = onnx_for_checkpoint(weights, img_size, dynamic=True)
    if suffix == ".xml" or backend == "openvino":
        from .openvino_backend import OpenVinoBackend

        return OpenVinoBackend(weights, num_threads=num_threads, streams=streams)
    if weights.suffix.lower() != ".onnx":
        raise AscendSlimError(f"cannot run {weights.name} with onnxruntime: expected a .onnx or .pt file")
    from .onnxruntime_backend import OnnxRuntimeBackend

    if providers is None:
        providers = [("CUDAExecutionProvider", {"device_id": index})] if kind == "cuda" else []
        providers.append("CPUExecutionProvider")
    return OnnxRuntimeBackend(weights, providers=providers, num_threads=num_threads)


def sdk_available(kind: str) -> bool:
    """Whether the Python module of an Ascend backend's SDK can be imported."""
    return importlib.util.find_spec(SDK_MODULES[kind]) is not None


def open_ascend_backend(weights: str | Path, kind: str = "auto", device_id: int = 0) -> Backend:
    """Open an ``.om`` with the ``acl`` or ``mindx`` backend; ``auto`` picks the first whose SDK module imports
    (pyACL first: it runs the .om directly, without a JPEG round trip)."""
    weights = Path(weights)
    if kind not in ("auto", *ASCEND_BACKENDS):
        raise AscendSlimError(f"{weights.name} is an Ascend model: run it with --backend acl or mindx, not {kind}")
    if weights.suffix.lower() != ".om":
        raise AscendSlimError(
            f"backend {kind} runs Ascend .om models, not {weights.name}: convert it with `ascend-slim deploy` "
            "and `ascend-slim convert` (or bash convert.sh) first"
        )
    if not weights.is_file():
        raise AscendSlimError(f"model not found: {weights}")
    if kind == "auto":
        kind = next((k for k in ASCEND_BACKENDS if sdk_available(k)), "acl")
    if kind == "acl":
        from .acl_backend import AclBackend

        return AclBackend(weights, device_id=device_id)
    from .mindx_backend import MindXBackend

    return MindXBackend(weights, device_id=device_id)


def installed_runtimes() -> list[str]:
    """The names of the CPU :data:`RUNTIMES` installed here, onnxruntime first."""
    return [name for name in RUNTIMES if importlib.util.find_spec(name) is not None]
