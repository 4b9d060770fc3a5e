"""OpenVINO backend (``pip install 'ascend-slim[openvino]'``): runs an IR (``.xml`` + ``.bin``) or an ONNX export.

The IR and its model facts are read by :mod:`ascend_slim.openvino_ir`. ``--threads`` and ``--workers`` map onto
OpenVINO's CPU settings (:func:`compile_config`): one stream with the latency hint for one image at a time, the
throughput hint with one stream per worker for pipelined runs. Pre- and post-processing stay in the C++ core, as on
every backend.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AscendSlimError
from ..openvino_ir import first_line, openvino_core, read_model
from .base import Backend


def compile_config(threads: int | None = None, streams: int | None = None) -> dict[str, Any]:
    """CPU plugin settings: ``threads`` per inference (None or 0: OpenVINO's choice, all cores) and ``streams``
    inferences in flight (None or 1: the latency hint, one stream; more: the throughput hint with that many
    streams, each of ``threads`` threads). Float layers compute in FP32: OpenVINO would otherwise switch to
    bfloat16 on CPUs that have it (AVX512-BF16, AMX), which moves scores by about 0.01."""
    many = streams is not None and streams > 1
    config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT" if many else "LATENCY",
                              "NUM_STREAMS": int(streams) if many else 1, "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads) * (int(streams) if many else 1)
    return config


def compile_model(model: Any, threads: int | None = None, streams: int | None = None, source: str = "model") -> Any:
    """``model`` compiled for the CPU with :func:`compile_config`; a failure is one line naming ``source``."""
    try:
        return openvino_core().compile_model(model, "CPU", compile_config(threads, streams))
    except RuntimeError as exc:
        raise AscendSlimError(f"OpenVINO cannot compile {source}: {first_line(exc)}") from None


def _dims(shape: Any) -> list[int | str]:
    """A partial shape as ints, a dynamic dimension as ``"?"``."""
    return [d.get_length() if d.is_static else "?" for d in shape]


class OpenVinoBackend(Backend):
    """Runs an ascend-slim IR (or ONNX export) with OpenVINO on the CPU; see the module doc for the settings.

    ``run`` may be called from several threads at once: each thread has its own infer request.
    """

    name = "openvino"
    concurrent = True

    def __init__(self, path: str | Path, num_threads: int | None = None, streams: int | None = None) -> None:
        self.path = Path(path)
        model, self.meta = read_model(self.path)
        if len(model.inputs) != 1 or len(model.inputs[0].get_partial_shape()) != 4:
            raise AscendSlimError(f"{self.path} is not a single-input image model "
                                  f"(inputs: {[_dims(i.get_partial_shape()) for i in model.inputs]})")
        self.input_shape = tuple(_dims(model.inputs[0].get_partial_shape()))
        self.meta.check_outputs([_dims(o.get_partial_shape()) for o in model.outputs], source=str(self.path))
        self.compiled = compile_model(model, num_threads, streams, source=str(self.path))
        self.config = compile_config(num_threads, streams)
        self._local = threading.local()

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        fixed = [(got, want) for got, want in zip(tensor.shape, self.input_shape) if isinstance(want, int)]
        if tensor.ndim != 4 or any(got != want for got, want in fixed):
            raise AscendSlimError(
                f"input batch shape {tuple(tensor.shape)} does not match the model input {self.input_shape}"
            )
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        request.infer({0: np.ascontiguousarray(tensor, dtype=np.float32)})
        return [np.array(request.get_output_tensor(i).data) for i in range(len(self.compiled.outputs))]

    def close(self) -> None:
        """Drop every thread's infer request, then the compiled model (requests must not outlive it)."""
        self._local = threading.local()
        self.compiled = None
