"""Model facts that travel with every exported model (ONNX ``metadata_props``), readable without torch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from .errors import AscendSlimError

META_KEY_PREFIX = "ascend_slim."
FORMAT_VERSION = 1
HEAD_LAYOUTS = ("raw", "decoded")
ImageSize = Union[int, Sequence[int]]


def as_hw(size: ImageSize) -> tuple[int, int]:
    """An image size given as ``640`` or ``(height, width)`` as a ``(height, width)`` pair of ints.

    Raises ValueError for anything else, including non-integral values (``640.7`` is never truncated).
    """
    values = [size] * 2 if isinstance(size, (int, float, np.integer, np.floating)) else list(size)
    if len(values) != 2 or any(isinstance(v, bool) or not float(v).is_integer() for v in values):
        raise ValueError(f"image size must be an int or (height, width) ints, got {size!r}")
    return int(values[0]), int(values[1])


def raw_head_names(num_levels: int) -> list[str]:
    """Output names of a raw-head export, smallest stride first: ``head0``, ``head1``, ..."""
    return [f"head{i}" for i in range(num_levels)]


@dataclass
class ModelMeta:
    """What a runtime needs to preprocess for and decode a YOLOv5 model.

    ``anchors`` are in input pixels, shape (nl, na, 2), one row per stride in ``strides`` order.
    ``head`` is ``"raw"`` (nl outputs ``[N, na, ny, nx, 5+nc]`` logits) or ``"decoded"``
    (one ``[N, K, 5+nc]`` output).
    """

    names: list[str]
    strides: list[float]
    anchors: np.ndarray
    img_size: tuple[int, int]  # (height, width)
    head: str = "raw"
    batch: int = 1
    dynamic: bool = False  # height and width may vary (CPU exports); img_size is then the largest side
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.anchors = np.asarray(self.anchors, dtype=np.float32).reshape(len(self.strides), -1, 2)
        self.img_size = as_hw(self.img_size)
        if self.head not in HEAD_LAYOUTS:
            raise AscendSlimError(f"unknown head layout {self.head!r}: expected 'raw' or 'decoded'")

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def na(self) -> int:
        return int(self.anchors.shape[1])

    def to_props(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props``."""
        values = {
            "format_version": FORMAT_VERSION,
            "names": self.names,
            "strides": self.strides,
            "anchors": self.anchors.tolist(),
            "img_size": list(self.img_size),
            "head": self.head,
            "batch": self.batch,
            "dynamic": self.dynamic,
            "history": self.history,
        }
        return {META_KEY_PREFIX + k: json.dumps(v) for k, v in values.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> ModelMeta:
        """Inverse of :meth:`to_props`; raises AscendSlimError when the model carries no ascend-slim facts."""
        try:
            values = {k[len(META_KEY_PREFIX):]: json.loads(v) for k, v in props.items()
                      if k.startswith(META_KEY_PREFIX)}
            return cls(names=list(values["names"]), strides=[float(s) for s in values["strides"]],
                       anchors=np.asarray(values["anchors"], dtype=np.float32),
                       img_size=tuple(values["img_size"]), head=values["head"],
                       batch=int(values.get("batch", 1)), dynamic=bool(values.get("dynamic", False)),
                       history=list(values.get("history", [])))
        except (KeyError, ValueError, TypeError) as exc:
            raise AscendSlimError(
                f"{source} carries no ascend-slim model facts ({exc}); export it with `ascend-slim export`"
            ) from None
