"""The backend seam: a backend only turns a preprocessed tensor into raw head tensors."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..meta import ModelMeta


class Backend(ABC):
    """Runs one compiled model. Pre- and post-processing live outside, in the C++ core.

    ``input_dtype`` is ``np.float32`` (NCHW RGB/255) or ``np.uint8`` (e.g. an Ascend model with AIPP);
    ``run`` returns the model outputs in ``meta.head`` layout, as numpy arrays.
    """

    meta: ModelMeta
    input_dtype: type = np.float32
    name: str = "backend"

    @abstractmethod
    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Execute the model on a ``[N, 3, H, W]`` tensor and return its outputs."""

    def close(self) -> None:
        """Release device resources (nothing to release by default)."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
