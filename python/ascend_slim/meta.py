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


def _listed(value: object) -> object:
    """``value`` with arrays as nested lists, for one-line messages."""
    return value.tolist() if isinstance(value, np.ndarray) else value


def _positive_numbers(values: object) -> np.ndarray | None:
    """``values`` as a float64 array if all are finite and positive, else None."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if (np.isfinite(array) & (array > 0)).all() else None


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
        """Check every field; a bad one raises AscendSlimError naming it (edited metadata is not trusted)."""
        names = self.names
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise AscendSlimError(f"names must be a non-empty list of non-empty class names, got {names!r:.200}")
        strides = _positive_numbers(self.strides)
        if strides is None or strides.ndim != 1 or not strides.size:
            raise AscendSlimError(f"strides must be a list of positive numbers, got {_listed(self.strides)!r:.200}")
        anchors = _positive_numbers(self.anchors)
        if anchors is None or not anchors.size or anchors.size % (2 * strides.size):
            raise AscendSlimError(f"anchors must be positive (width, height) pairs for each of the {strides.size} "
                                  f"strides, got {_listed(self.anchors)!r:.200}")
        self.anchors = anchors.astype(np.float32).reshape(strides.size, -1, 2)
        try:
            self.img_size = as_hw(self.img_size)
        except (TypeError, ValueError):
            raise AscendSlimError(f"img_size must be (height, width) integers, got {self.img_size!r}") from None
        if min(self.img_size) < 1:
            raise AscendSlimError(f"img_size must be positive, got {list(self.img_size)}")
        if self.head not in HEAD_LAYOUTS:
            raise AscendSlimError(f"unknown head layout {self.head!r}: expected 'raw' or 'decoded'")
        if isinstance(self.batch, bool) or not isinstance(self.batch, (int, np.integer)) or self.batch < 1:
            raise AscendSlimError(f"batch must be a positive integer, got {self.batch!r}")

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def nl(self) -> int:
        return len(self.strides)

    @property
    def na(self) -> int:
        return int(self.anchors.shape[1])

    def check_outputs(self, shapes: Sequence[Sequence[object]], source: str = "model") -> None:
        """Raise AscendSlimError unless the model outputs ``shapes`` (dims may be names: dynamic) fit the facts:
        one ``[N, na, ny, nx, 5+nc]`` per stride for a raw head, one ``[N, K, 5+nc]`` for a decoded one."""
        raw = self.head == "raw"
        want = f"{self.nl} raw heads [N, {self.na}, ny, nx, {self.nc + 5}]" if raw else f"one [N, K, {self.nc + 5}]"
        fixed = {1: self.na, 4: self.nc + 5} if raw else {2: self.nc + 5}
        if len(shapes) != (self.nl if raw else 1) or any(
                len(shape) != (5 if raw else 3)
                or any(isinstance(shape[i], int) and shape[i] != n for i, n in fixed.items()) for shape in shapes):
            raise AscendSlimError(f"{source} outputs {[list(s) for s in shapes]} do not match its model facts "
                                  f"({self.nc} class names, {self.na} anchors per level): expected {want}")

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
        """Inverse of :meth:`to_props`; raises AscendSlimError when the model carries no ascend-slim facts or a
        fact is unusable (naming the field)."""
        try:
            values = {k[len(META_KEY_PREFIX):]: json.loads(v) for k, v in props.items()
                      if k.startswith(META_KEY_PREFIX)}
            fields = dict(names=values["names"], strides=values["strides"], anchors=values["anchors"],
                          img_size=values["img_size"],
                          head=values["head"], batch=values.get("batch", 1),
                          dynamic=bool(values.get("dynamic", False)), history=list(values.get("history", [])))
        except (KeyError, ValueError, TypeError) as exc:
            raise AscendSlimError(
                f"{source} carries no ascend-slim model facts ({exc}); export it with `ascend-slim export`"
            ) from None
        try:
            return cls(**fields)
        except AscendSlimError as exc:
            raise AscendSlimError(f"{source} has unusable model facts: {exc}; re-export it with "
                                  "`ascend-slim export`") from None
