"""Unlabelled images as model input (torch): letterboxed to a square as ``eval`` feeds them, NCHW float32 in [0, 1].

Label-free compression reads images this way: importance criteria, least-squares reconstruction, block scoring
and distillation recovery.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch

from .. import core
from ..imageio import read_image

ImageSource = Union[np.ndarray, str, Path]  # a BGR array or an image file


def letterboxed(images: Sequence[ImageSource], img_size: int) -> torch.Tensor:
    """``images`` (BGR arrays or paths) letterboxed to ``img_size`` square, one ``[N, 3, S, S]`` float32 tensor."""
    arrays = [item if isinstance(item, np.ndarray) else read_image(item) for item in images]
    tensor, _, _ = core.preprocess(arrays, (img_size, img_size), dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(tensor))


def letterboxed_batches(images: Sequence[ImageSource], img_size: int, batch_size: int) -> Iterator[torch.Tensor]:
    """:func:`letterboxed` batches of ``batch_size`` images, in order."""
    for start in range(0, len(images), batch_size):
        yield letterboxed(images[start:start + batch_size], img_size)
