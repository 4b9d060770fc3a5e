"""CPU (or any onnxruntime provider) backend for exported ``.onnx`` models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import AscendSlimError
from ..meta import ModelMeta
from .base import Backend

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}


class OnnxRuntimeBackend(Backend):
    """Runs an ascend-slim ONNX export with onnxruntime; model facts come from its ``metadata_props``."""

    name = "onnxruntime"
    concurrent = True  # InferenceSession.run is thread-safe

    def __init__(self, path: str | Path, providers: Sequence[str | tuple[str, dict]] | None = None,
                 num_threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise AscendSlimError(f"model not found: {path} (pass an existing .onnx or .pt with --weights)")
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        available = ort.get_available_providers()
        providers = list(providers) if providers else ["CPUExecutionProvider"]
        unknown = [p if isinstance(p, str) else p[0] for p in providers]
        unknown = [name for name in unknown if name not in available]
        if unknown:
            raise AscendSlimError(
                f"onnxruntime provider(s) {', '.join(unknown)} not available; "
                f"available: {', '.join(available)}"
            )
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt models
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AscendSlimError(f"cannot load ONNX model {path}: {first_line}") from None
        self.meta = ModelMeta.from_props(self.session.get_modelmeta().custom_metadata_map, source=str(path))
        inp = self.session.get_inputs()
        if len(inp) != 1 or len(inp[0].shape) != 4:
            names = [i.name for i in inp]
            raise AscendSlimError(f"{path} is not a single-input image model (inputs: {names})")
        self.input_name = inp[0].name
        self.input_dtype = _ORT_DTYPES.get(inp[0].type, np.float32)
        self.input_shape = tuple(inp[0].shape)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.meta.check_outputs([o.shape for o in self.session.get_outputs()], source=str(path))

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        fixed = [(got, want) for got, want in zip(tensor.shape, self.input_shape) if isinstance(want, int)]
        if tensor.ndim != 4 or any(got != want for got, want in fixed):
            raise AscendSlimError(
                f"input batch shape {tuple(tensor.shape)} does not match the model input {self.input_shape}"
            )
        return self.session.run(self.output_names, {self.input_name: tensor})
