"""Paired bootstrap over images of a mAP@0.5 (VOC07 11-point) difference between two models.

A selection split of a few hundred images measures mAP only to about ±1–2 points, so a compression choice
states the (candidate − original) difference with an interval. Both models are scored on the same resampled
image multisets (paired), which cancels most of the per-image difficulty that the two share.

Speed: VOC matching is per image, so each model is matched once (:func:`~.metrics.match_detections`) and a
resample only re-weights images. An image drawn ``w`` times contributes ``w`` copies of its detections and
ground truth; the copies are adjacent in score order, so on the precision-recall curve they form one step whose
end point dominates its inside points, and every false positive is dominated by the point before it. The AP of a
resample therefore needs only the curve at the true positives, with weighted counts: the false positives ranked
above each true positive are a (true positives × images) count matrix per class, so a chunk of resamples is one
matrix product (BLAS) and cumulative sums; no sorting, no matching. Memory: 4 bytes × true positives × images
(269 images × 665 true positives: 0.7 MB). With unit weights this is exactly
:func:`~.metrics.score_detections`'s VOC07 mAP (same ties, same floating-point operations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from ..data.voc import Annotation
from ..fileio import atomic_output
from .metrics import VOC07_RECALL_POINTS, match_detections

PERCENTILES = np.arange(101)  # the stored quantile grid of a bootstrap distribution, in percent
MIN_RELIABLE_IMAGES = 30  # below this many images a bootstrap interval is too coarse to trust (reported as such)
_CHUNK = 256  # resamples evaluated at once (bounds memory: chunk x detections floats)
_NORMAL = NormalDist()


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
        self._index_true_positives()

    def _index_true_positives(self) -> None:
        """Every class's true positives in score order, classes one after another: their image, class and the
        (true positives × images) counts of the false positives ranked between each and the one before."""
        num_images = len(self.image_ids)
        tp_image, tp_class, fp_counts = [], [], []
        for c, (image, tp) in enumerate(zip(*self._records)):
            num_tp = int(tp.sum())
            segment = np.cumsum(tp)[~tp]  # true positives ranked above each false positive
            fp_image = image[~tp]
            before_last_tp = segment < num_tp  # false positives after the last true positive never count
            counts = np.bincount(segment[before_last_tp] * num_images + fp_image[before_last_tp],
                                 minlength=num_tp * num_images)
            tp_image.append(image[tp])
            tp_class.append(np.full(num_tp, c))
            fp_counts.append(counts.reshape(num_tp, num_images).astype(np.float32))
        self._tp_image = np.concatenate([np.zeros(0, dtype=np.int64), *tp_image])
        self._tp_class = np.concatenate([np.zeros(0, dtype=np.int64), *tp_class])
        self._fp_counts = np.concatenate([np.zeros((0, num_images), dtype=np.float32), *fp_counts])
        sizes = np.array([len(t) for t in tp_image])
        self._class_start = np.cumsum(sizes) - sizes  # (C,) first column of each class
        self._has_tp = sizes > 0

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
        npos = weights @ self.npos  # (B, C); exact: small integers
        ap = np.where(npos > 0, 0.0, np.nan)
        if not self._tp_image.size:
            return ap
        starts = self._class_start[self._has_tp]
        first = np.repeat(starts, np.diff(np.append(starts, len(self._tp_image))))  # each column's class start

        def cumsum_per_class(x: np.ndarray) -> np.ndarray:  # exact: integer-valued floats
            total = np.cumsum(x, axis=1, dtype=np.float64)
            before = np.concatenate((np.zeros((len(x), 1)), total), axis=1)[:, first]
            return total - before

        ctp = cumsum_per_class(weights[:, self._tp_image])
        # false positives: integer counts below 2**24 are exact in float32; one matrix product for all classes
        cfp = cumsum_per_class(weights.astype(np.float32) @ self._fp_counts.T)
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = ctp / npos[:, self._tp_class]
        precision = ctp / np.maximum(ctp + cfp, 1)
        envelope = np.stack([np.maximum.reduceat(np.where(recall >= t, precision, 0.0), starts, axis=1)
                             for t in VOC07_RECALL_POINTS], axis=-1)  # (B, classes with a TP, 11)
        with_tp = ap[:, self._has_tp]
        ap[:, self._has_tp] = np.where(np.isnan(with_tp), np.nan, envelope.mean(axis=-1))
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
    """Bootstrap distribution of a (candidate − original) mAP difference, summarised by its percentiles.

    Bounds are bias-corrected percentile bootstrap (BC, Efron 1981): resampled mAP differences are median-biased
    (on VOC trainval, 269 images, their median sits up to ~0.9 points above the full-sample difference), so the
    quantile levels are shifted by ``z0 = Φ⁻¹(below)`` to ``Φ(2 z0 + Φ⁻¹(level))``; with no bias (``below`` =
    0.5) these are the plain percentiles.
    """

    difference: float  # on the full sample
    percentiles: tuple[float, ...]  # the resampled difference at 0, 1, ..., 100 %
    resamples: int
    below: float  # fraction of resampled differences below ``difference`` (ties count half)
    images: int = 0  # images resampled (0: not recorded, an older cache)

    @property
    def reliable(self) -> bool:
        """Whether the interval rests on enough images (:data:`MIN_RELIABLE_IMAGES`) to be trusted at all."""
        return self.images >= MIN_RELIABLE_IMAGES

    def quantile(self, q: float) -> float:
        """The resampled difference at quantile ``q`` in [0, 1] (linear between stored percentiles)."""
        return float(np.interp(100.0 * q, PERCENTILES, self.percentiles))

    def _corrected(self, level: float) -> float:
        edge = 0.5 / self.resamples  # keep z0 finite when every resample falls on one side
        z0 = _NORMAL.inv_cdf(min(max(self.below, edge), 1.0 - edge))
        return _NORMAL.cdf(2.0 * z0 + _NORMAL.inv_cdf(level))

    def lower_bound(self, confidence: float) -> float:
        """One-sided lower bound at ``confidence``: the BC quantile at level ``1 - confidence``."""
        return self.quantile(self._corrected(1.0 - confidence))

    def interval(self, confidence: float) -> tuple[float, float]:
        """Two-sided BC interval at ``confidence``."""
        return self.quantile(self._corrected((1.0 - confidence) / 2)), self.quantile(
            self._corrected((1.0 + confidence) / 2))

    def to_dict(self) -> dict:
        return {"difference": self.difference, "resamples": self.resamples, "below": self.below,
                "images": self.images, "percentiles": list(self.percentiles)}

    @classmethod
    def from_dict(cls, data: Mapping) -> DifferenceInterval:
        return cls(float(data["difference"]), tuple(float(p) for p in data["percentiles"]), int(data["resamples"]),
                   float(data["below"]), int(data.get("images", 0)))


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

    def differences(self, candidate: MatchTable) -> np.ndarray:
        """The (candidate − reference) mAP@0.5 difference in every resample, ``(resamples,)``, in resample order
        (the same for every candidate: what a correction for choosing among candidates replays)."""
        self.reference.check_paired(candidate)
        return self._resampled(candidate) - self._reference_resampled

    def compare(self, candidate: MatchTable, differences: np.ndarray | None = None) -> DifferenceInterval:
        """The (candidate − reference) mAP@0.5 difference and its bootstrap distribution (``differences``: the
        resampled ones when :meth:`differences` computed them already).

        A resample in which a class has no GT drops that class from both means (as the full sample would).
        """
        diff = self.differences(candidate) if differences is None else differences
        difference = candidate.map50() - self.reference_map
        below = (np.count_nonzero(diff < difference) + 0.5 * np.count_nonzero(diff == difference)) / len(diff)
        return DifferenceInterval(difference, tuple(float(v) for v in np.percentile(diff, PERCENTILES)),
                                  self.resamples, float(below), self.reference.num_images)
