"""The backend seam: a backend only turns a preprocessed tensor into raw head tensors."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..meta import ModelMeta


class Backend(ABC):
    """Runs one compiled model. Pre- and post-processing live outside, in the C++ core.

    The input is the letterboxed batch made by ``ascend_slim.core.preprocess``: ``input_dtype`` float32 means
    RGB/255, uint8 means RGB 0..255 (e.g. for an Ascend model with AIPP, which the backend may re-encode as
    NV12 or JPEG); ``input_layout`` is ``"NCHW"`` or ``"NHWC"``. ``run`` returns the model outputs in
    ``meta.head`` layout, as numpy arrays.
    """

    meta: ModelMeta
    input_dtype: type = np.float32
    input_layout: str = "NCHW"
    concurrent: bool = False  # True when ``run`` may be called from several threads at once
    name: str = "backend"

    @abstractmethod
    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Execute the model on one preprocessed batch and return its outputs."""

    def close(self) -> None:
        """Release device resources (nothing to release by default)."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
