"""CPU (or any onnxruntime provider) backend for exported ``.onnx`` models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import AscendSlimError
from ..meta import ModelMeta
from .base import Backend
from .onnx_session import numpy_dtype, open_session


class OnnxRuntimeBackend(Backend):
    """Runs an ascend-slim ONNX export with onnxruntime; model facts come from its ``metadata_props``."""

    name = "onnxruntime"
    concurrent = True  # InferenceSession.run is thread-safe

    def __init__(self, path: str | Path, providers: Sequence[str | tuple[str, dict]] | None = None,
                 num_threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise AscendSlimError(f"model not found: {path} (pass an existing .onnx or .pt with --weights)")
        self.session = open_session(path, num_threads, providers)
        self.meta = ModelMeta.from_props(self.session.get_modelmeta().custom_metadata_map, source=str(path))
        inp = self.session.get_inputs()
        if len(inp) != 1 or len(inp[0].shape) != 4:
            names = [i.name for i in inp]
            raise AscendSlimError(f"{path} is not a single-input image model (inputs: {names})")
        self.input_name = inp[0].name
        self.input_dtype = numpy_dtype(inp[0].type)
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
