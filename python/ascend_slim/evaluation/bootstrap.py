"""Paired bootstrap over images of a mAP@0.5 (VOC07 11-point) difference between two models.

A selection split of a few hundred images measures mAP only to about ±1–2 points, so a compression choice
states the (candidate − original) difference with an interval. Both models are scored on the same resampled
image multisets (paired), which cancels most of the per-image difficulty that the two share.

Speed: VOC matching is per image, so each model is matched once (:func:`~.metrics.match_detections`) and a
resample only re-weights images. An image drawn ``w`` times contributes ``w`` copies of its detections and
ground truth; the copies are adjacent in score order, so on the precision-recall curve they form one step whose
end point dominates its inside points, and every false positive is dominated by the point before it. The AP of a
resample therefore needs only the curve at the true positives, with weighted counts: gathers and cumulative
sums over the detections of the full sample, no sorting, no matching. With unit weights this is exactly
:func:`~.metrics.score_detections`'s VOC07 mAP (same ties, same floating-point operations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.voc import Annotation
from ..fileio import atomic_output
from .metrics import VOC07_RECALL_POINTS, match_detections

PERCENTILES = np.arange(101)  # the stored quantile grid of a bootstrap distribution, in percent
_CHUNK = 128  # resamples evaluated at once (bounds memory: chunk x detections floats)


@dataclass(frozen=True)
class _ClassCurve:
    """One class's true positives in score order and the false positives before each (full sample)."""

    tp_image: np.ndarray  # (K,) image index of each true positive
    fp_image: np.ndarray  # (F,) image index of each false positive before the last true positive
    fp_before: np.ndarray  # (K,) number of those false positives ranked above each true positive


class MatchTable:
    """One model's per-image match records at IoU 0.5 on one labelled image set, ready for resampling.

    Build it with :meth:`from_detections` (detections and annotations as :func:`~.metrics.score_detections`
    takes them); :meth:`map50` of unit weights is that function's ``mean("ap50_voc07")`` exactly.
    """

    def __init__(self, image_ids: Sequence[str], class_names: Sequence[str], npos: np.ndarray,
                 tp_image: Sequence[np.ndarray], tp_flags: Sequence[np.ndarray]) -> None:
        self.image_ids = tuple(image_ids)
        self.class_names = tuple(class_names)
        self.npos = np.asarray(npos, dtype=np.float64)
        if self.npos.shape != (len(self.image_ids), len(self.class_names)):
            raise ValueError(f"npos has shape {self.npos.shape}, expected "
                             f"({len(self.image_ids)}, {len(self.class_names)})")
        self._records = (tuple(np.asarray(i, dtype=np.int64) for i in tp_image),
                         tuple(np.asarray(t, dtype=bool) for t in tp_flags))
        self._curves = [self._curve(img, tp) for img, tp in zip(*self._records)]

    @staticmethod
    def _curve(image: np.ndarray, tp: np.ndarray) -> _ClassCurve:
        last = np.flatnonzero(tp)
        keep = last[-1] + 1 if last.size else 0  # false positives after the last true positive never count
        image, tp = image[:keep], tp[:keep]
        return _ClassCurve(image[tp], image[~tp], np.cumsum(~tp)[tp])

    @classmethod
    def from_detections(cls, detections: Mapping[str, np.ndarray], annotations: Mapping[str, Annotation],
                        class_names: Sequence[str]) -> MatchTable:
        matches = match_detections(detections, annotations, class_names, iou_threshold=0.5)
        return cls(matches.image_ids, matches.class_names, matches.npos,
                   [m.image for m in matches.classes], [m.tp for m in matches.classes])

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def check_paired(self, other: MatchTable) -> None:
        """Raise ValueError unless ``other`` scores the same images (same order) with the same classes."""
        if other.image_ids != self.image_ids or other.class_names != self.class_names:
            extra = sorted(set(other.image_ids) ^ set(self.image_ids))[:3]
            raise ValueError("paired bootstrap needs both models scored on the same images and classes"
                             + (f" (differing images, e.g. {', '.join(extra)})" if extra else ""))

    def class_ap50(self, weights: np.ndarray) -> np.ndarray:
        """VOC07 11-point AP@0.5 per class for each row of image multiplicities ``weights`` ``(B, N)``:
        ``(B, C)``, NaN where a row has no non-difficult GT of the class."""
        weights = np.asarray(weights, dtype=np.float64)
        ap = np.full((len(weights), len(self.class_names)), np.nan)
        npos = weights @ self.npos  # (B, C); exact: small integers
        for c, curve in enumerate(self._curves):
            has_gt = npos[:, c] > 0
            if not has_gt.any():
                continue
            ap[has_gt, c] = 0.0
            if curve.tp_image.size == 0:
                continue
            w = weights[has_gt]
            ctp = np.cumsum(w[:, curve.tp_image], axis=1)
            cfp = np.cumsum(np.concatenate((np.zeros((len(w), 1)), w[:, curve.fp_image]), axis=1), axis=1)
            cfp = cfp[:, curve.fp_before]
            recall = ctp / npos[has_gt, c][:, None]
            precision = ctp / np.maximum(ctp + cfp, 1)
            envelope = np.stack([np.where(recall >= t, precision, 0.0).max(axis=1) for t in VOC07_RECALL_POINTS],
                                axis=1)
            ap[has_gt, c] = envelope.mean(axis=1)
        return ap

    def map50(self, weights: np.ndarray | None = None) -> np.ndarray | float:
        """mAP@0.5 VOC07 over the classes with GT: a float for the full sample (``weights=None``), else one per
        row of ``weights`` ``(B, N)``."""
        if weights is None:
            return float(self._means(self.class_ap50(np.ones((1, self.num_images))))[0])
        return self._means(self.class_ap50(weights))

    @staticmethod
    def _means(ap: np.ndarray) -> np.ndarray:
        # row by row as EvalResult.mean sums, so the full sample reproduces score_detections bit for bit
        return np.array([row[~np.isnan(row)].mean() if (~np.isnan(row)).any() else np.nan for row in ap])

    def save(self, path: str | Path) -> Path:
        """Write the records to an ``.npz`` file (atomically), for a resumed run to reuse without re-scoring."""
        arrays: dict[str, np.ndarray] = {"image_ids": np.array(self.image_ids), "npos": self.npos,
                                         "class_names": np.array(self.class_names)}
        for c, (image, tp) in enumerate(zip(*self._records)):
            arrays[f"image_{c}"], arrays[f"tp_{c}"] = image, tp
        path = Path(path)
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> MatchTable:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["class_names"]]
            return cls([str(i) for i in z["image_ids"]], names, z["npos"],
                       [z[f"image_{c}"] for c in range(len(names))], [z[f"tp_{c}"] for c in range(len(names))])


@dataclass(frozen=True)
class DifferenceInterval:
    """Bootstrap distribution of a (candidate − original) mAP difference, summarised by its percentiles."""

    difference: float  # on the full sample
    percentiles: tuple[float, ...]  # the resampled difference at 0, 1, ..., 100 %
    resamples: int

    def quantile(self, q: float) -> float:
        """The resampled difference at quantile ``q`` in [0, 1] (linear between stored percentiles)."""
        return float(np.interp(100.0 * q, PERCENTILES, self.percentiles))

    def lower_bound(self, confidence: float) -> float:
        """One-sided lower bound: the true difference is at least this with probability ``confidence``
        (percentile bootstrap: the ``1 - confidence`` quantile)."""
        return self.quantile(1.0 - confidence)

    def interval(self, confidence: float) -> tuple[float, float]:
        """Two-sided percentile interval at ``confidence``."""
        return self.quantile((1.0 - confidence) / 2), self.quantile((1.0 + confidence) / 2)

    def to_dict(self) -> dict:
        return {"difference": self.difference, "resamples": self.resamples,
                "percentiles": list(self.percentiles)}

    @classmethod
    def from_dict(cls, data: Mapping) -> DifferenceInterval:
        return cls(float(data["difference"]), tuple(float(p) for p in data["percentiles"]), int(data["resamples"]))


class PairedBootstrap:
    """Resamples of one labelled image set, drawn once, against which candidates are compared to a reference
    (the original model): every candidate sees the same resamples, so their intervals are comparable."""

    def __init__(self, reference: MatchTable, resamples: int = 1000, seed: int = 0) -> None:
        if resamples < 1:
            raise ValueError(f"resamples must be at least 1, got {resamples}")
        self.reference = reference
        self.resamples = resamples
        n = reference.num_images
        self.weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
        self.reference_map = reference.map50()
        self._reference_resampled = self._resampled(reference)

    def _resampled(self, table: MatchTable) -> np.ndarray:
        return np.concatenate([table.map50(self.weights[s:s + _CHUNK]) for s in range(0, self.resamples, _CHUNK)])

    def compare(self, candidate: MatchTable) -> DifferenceInterval:
        """The (candidate − reference) mAP@0.5 difference and its bootstrap distribution.

        A resample in which a class has no GT drops that class from both means (as the full sample would).
        """
        self.reference.check_paired(candidate)
        diff = self._resampled(candidate) - self._reference_resampled
        return DifferenceInterval(candidate.map50() - self.reference_map,
                                  tuple(float(v) for v in np.percentile(diff, PERCENTILES)), self.resamples)
