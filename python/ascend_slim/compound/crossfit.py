"""Cross-fitting: the selection images split into K folds, so that no image both fits a candidate and scores it.

A candidate that is fitted to images (INT8 calibration, channel importance, reconstruction, finetuning) is built
K times, fold ``k``'s model fitted only on images outside fold ``k``, and scored only on fold ``k``; the per-image
match records of the K folds together cover every selection image, so the paired bootstrap over images is
unchanged. A candidate fitted to nothing (an uncut FP32 model at another input size) is scored once on every
image. The delivered model is fitted on all the fitting images (it is never scored on the selection split).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AscendSlimError


@dataclass(frozen=True)
class Folds:
    """``image_ids`` (the selection images, in their order) and the fold of each, ``fold_of``."""

    image_ids: tuple[str, ...]
    fold_of: tuple[int, ...]
    k: int
    seed: int

    @classmethod
    def split(cls, image_ids: Sequence[str], k: int = 2, seed: int = 0) -> Folds:
        """Balanced folds of a seeded random permutation."""
        if k < 2:
            raise AscendSlimError(f"cross-fitting needs at least 2 folds, got {k}")
        if len(image_ids) < k:
            raise AscendSlimError(f"{len(image_ids)} selection images cannot make {k} folds")
        order = np.random.default_rng(seed).permutation(len(image_ids))
        fold_of = np.empty(len(image_ids), dtype=int)
        fold_of[order] = np.arange(len(image_ids)) % k
        return cls(tuple(image_ids), tuple(int(f) for f in fold_of), k, seed)

    def scored(self, fold: int) -> list[str]:
        """The selection images fold ``fold`` scores, in selection order."""
        return [i for i, f in zip(self.image_ids, self.fold_of) if f == fold]

    def fitting(self, fold: int, pool: Sequence[Path], scored_paths: Sequence[Path], count: int) -> list[Path]:
        """The first ``count`` images of ``pool`` that fold ``fold`` does not score (``scored_paths``: the image
        file of each of :meth:`scored`'s ids, compared resolved so a file under two names is still one image)."""
        held = {Path(p).resolve() for p in scored_paths}
        return [p for p in pool if Path(p).resolve() not in held][:count]

    def to_dict(self) -> dict:
        return {"k": self.k, "seed": self.seed, "images": len(self.image_ids)}
