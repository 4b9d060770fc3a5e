"""The models and measurements behind the slim recipe's compound plan (:mod:`ascend_slim.compound`).

:class:`CandidateModels` makes and keeps, in one folder, every file a candidate needs:

- a channel cut ``f`` removes at least ``f`` of all prunable channels *after* rounding: the least uniform fraction
  (the same fraction of every group, least important channels first by the chosen importance, kept widths
  rounded to ``round_to``) that does (:func:`~ascend_slim.prune.uniform.plan_removed`; a plain 2 % uniform cut
  rounded to 16 removes nothing on yolov5n), so the cut a candidate names is what it removes;
  its scored model is the pruned model re-fitted to the original by least-squares reconstruction
  (:func:`~ascend_slim.prune.reconstruct.reconstruct`, unlabelled images letterboxed at the candidate's size);
  its *shape* (enough to time it) is the pruned model before reconstruction;
- every candidate runs as a static raw-head ONNX export at its size, INT8 ones as the INT8 model of the target
  runtime's own quantizer (:class:`~ascend_slim.cpu_runtimes.CpuRuntime`: onnxruntime static QDQ, or an NNCF
  OpenVINO IR), calibrated on unlabelled images.

:class:`PlanMeasurer` gives the search its functions: ``score`` (the candidate's per-image match records on
the labelled selection split, with the validation protocol), ``latency`` (its latency over the original's
at the default size: measured on the target runtime, one thread, side by side with the original, or estimated
from conv FLOPs for accelerators whose latency tracks them) and ``retime`` (the finalists again, side by side,
with more rounds and an interval).

No image both fits and scores a candidate (cross-fitting, :class:`~ascend_slim.compound.crossfit.Folds`): when
the fitting images (calibration, importance, reconstruction: unlabelled training images) overlap the selection
split, a fitted candidate (cut or INT8) is built once per fold, fold ``k``'s copy fitted on training images
outside fold ``k`` (``plan/models/fold<k>/``), and scored on fold ``k`` only; the folds' match records make one
table over every selection image. The delivered model is fitted on the first images of the training split, as
before (``plan/models/``), and never scored on the selection split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..compound import Candidate
from ..compound.crossfit import Folds
from ..compound.objective import INTERVAL_LEVEL, LatencyInterval
from ..errors import AscendSlimError
from ..evaluation.bootstrap import MatchTable
from ..evaluation.protocol import VAL_SETTINGS, evaluate_file
from ..evaluation.runner import EvalDataset
from ..fileio import atomic_write_text, file_sha256
from ..model.checkpoint import load_weights, save_checkpoint
from ..model.yolo import YOLOv5
from ..prune.groups import ChannelGraph, build_graph
from ..prune.planner import PrunePlan
from .slim_config import LATENCY_MODELS

# Ascend 310's cube unit: 16 TOPS INT8 against 8 TFLOPS FP16, so the FLOPs model halves an INT8 candidate's cost
INT8_FLOPS_FACTOR = 0.5
RETIME_FACTOR = 3  # finalists are re-timed with this many times the search's latency rounds


@dataclass(frozen=True)
class ImageSubset:
    """Some images of a labelled set (what one fold scores), readable as an
    :class:`~ascend_slim.evaluation.runner.EvalDataset`."""

    dataset: EvalDataset
    ids: list[str]

    @property
    def annotations(self) -> dict:
        return self.dataset.annotations

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.dataset.class_names

    def image_path(self, image_id: str) -> Path:
        return self.dataset.image_path(image_id)


def fitted(candidate: Candidate) -> bool:
    """Whether ``candidate``'s model is fitted to images (a cut: importance and reconstruction; INT8: calibration)."""
    return bool(candidate.cut) or candidate.precision == "int8"


class CandidateModels:
    """Builds each candidate's model files once, in ``folder`` (a resumed plan reuses them)."""

    def __init__(self, original: YOLOv5, folder: str | Path, *, importance: str = "output", round_to: int = 16,
                 importance_size: int = 640, recon_images: Sequence[Path] = (), recon_samples: int = 1024,
                 calib_images: Sequence[Path] = (), progress: bool = True, runtime: str = "onnxruntime") -> None:
        from ..cpu_runtimes import cpu_runtime

        self.runtime = cpu_runtime(runtime)
        self.original = original.eval()
        self.folder = Path(folder)
        self.importance, self.round_to, self.importance_size = importance, round_to, importance_size
        self.recon_images, self.recon_samples = list(recon_images), recon_samples
        self.calib_images = list(calib_images)
        self.progress = progress
        self._graph: ChannelGraph | None = None
        self._scores: list[torch.Tensor] | None = None
        self._plans: dict[float, PrunePlan] = {}

    def refitted(self, folder: str | Path, recon_images: Sequence[Path],
                 calib_images: Sequence[Path]) -> CandidateModels:
        """The same candidates fitted on other images, their files in ``folder``."""
        return CandidateModels(self.original, folder, importance=self.importance, round_to=self.round_to,
                               importance_size=self.importance_size, recon_images=recon_images,
                               recon_samples=self.recon_samples, calib_images=calib_images, progress=self.progress,
                               runtime=self.runtime.name)

    def _file(self, candidate: Candidate, suffix: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{candidate.key}{suffix}"

    @property
    def graph(self) -> ChannelGraph:
        if self._graph is None:
            self._graph = build_graph(self.original)
        return self._graph

    def cut_plan(self, cut: float) -> PrunePlan:
        """The plan of cut level ``cut`` (importance scored once, on the original; ``percent``: the fraction
        removed, at least ``cut``)."""
        from ..prune.uniform import plan_removed

        if self._scores is None:
            self._scores = self._importance()(self.original, self.graph)
        if cut not in self._plans:
            self._plans[cut] = plan_removed(self.graph, self._scores, cut, round_to=self.round_to)
        return self._plans[cut]

    def _importance(self):
        from ..prune.importance import ConsumerOutputImportance, PseudoLabelTaylorImportance, get_importance

        if self.importance in ("output", "taylor"):
            if not self.recon_images:
                raise AscendSlimError(f"the {self.importance} importance needs images (the reconstruction images)")
            kind = ConsumerOutputImportance if self.importance == "output" else PseudoLabelTaylorImportance
            return kind(self.recon_images, img_size=self.importance_size)
        return get_importance(self.importance)

    def pruned(self, cut: float, shape_only: bool = False) -> YOLOv5:
        """The original pruned at ``cut``, not reconstructed. ``shape_only``: the same widths with channels chosen
        by BN |γ| (free), enough to time the cut before paying for the importance criterion."""
        from ..prune.importance import BNScaleImportance
        from ..prune.surgery import prune_model
        from ..prune.uniform import plan_removed

        if shape_only:
            keep = plan_removed(self.graph, BNScaleImportance()(self.original, self.graph), cut,
                                round_to=self.round_to).keep
        else:
            keep = self.cut_plan(cut).keep
        return prune_model(self.original, self.graph, keep, fold_bias=False)

    def reconstructed(self, img_size: int, cut: float) -> tuple[YOLOv5, dict]:
        """The pruned model of ``cut`` re-fitted to the original at ``img_size`` and the reconstruction report
        (per-layer errors, cost), both cached beside the candidate's files."""
        from ..prune.correspondence import channel_correspondence
        from ..prune.reconstruct import reconstruct

        path, record = self._file(Candidate(img_size, cut), ".pt"), self._file(Candidate(img_size, cut), ".recon.json")
        if path.is_file() and record.is_file():
            return load_weights(path)[0], json.loads(record.read_text())
        if not self.recon_images:
            raise AscendSlimError("channel cuts need reconstruction images (--recon-images > 0)")
        model = self.pruned(cut)
        correspondence = channel_correspondence(self.graph, self.cut_plan(cut).keep)
        report = reconstruct(self.original, model, correspondence, self.recon_images,
                             samples_per_image=self.recon_samples, img_size=img_size, progress=self.progress)
        model.history.append({"action": "reconstruct", "images": report.images, "samples_per_image":
                              report.samples_per_image, "ridge": report.ridge, "img_size": img_size})
        save_checkpoint(path, model, img_size=img_size)
        atomic_write_text(record, json.dumps(report.to_dict(), indent=1) + "\n")
        return model, report.to_dict()

    def model(self, candidate: Candidate) -> YOLOv5:
        """The torch model of ``candidate``'s FP32 parent (reconstructed when cut)."""
        return self.reconstructed(candidate.img_size, candidate.cut)[0] if candidate.cut else self.original

    def fp32_onnx(self, img_size: int, cut: float) -> Path:
        from ..export import export_onnx

        path = self._file(Candidate(img_size, cut), ".onnx")
        if not path.is_file():
            export_onnx(self.model(Candidate(img_size, cut)), path, img_size=img_size, head="raw")
        return path

    def int8_onnx(self, img_size: int, cut: float) -> Path:
        """The INT8 model of the runtime's quantizer (``.onnx`` QDQ for onnxruntime, ``.xml`` for OpenVINO)."""
        path = self._file(Candidate(img_size, cut, "int8"), self.runtime.suffix)
        if not path.is_file():
            if not self.calib_images:
                raise AscendSlimError("INT8 candidates need calibration images (--calib-images > 0)")
            self.runtime.quantize(self.fp32_onnx(img_size, cut), path, self.calib_images, progress=self.progress)
        return path

    def onnx(self, candidate: Candidate) -> Path:
        """The file ``candidate`` is scored and deployed as."""
        if candidate.precision == "int8":
            return self.int8_onnx(candidate.img_size, candidate.cut)
        return self.fp32_onnx(candidate.img_size, candidate.cut)

    def shape_onnx(self, candidate: Candidate) -> Path:
        """A file as fast as ``candidate``'s, made without its costly parts: a cut's widths before importance and
        reconstruction, INT8
        calibrated on :data:`~ascend_slim.cpu_runtimes.DRAFT_CALIBRATION_IMAGES` images (the graph, hence the
        speed, is the same). The candidate's own file when it exists."""
        from ..export import export_onnx

        suffix = self.runtime.suffix if candidate.precision == "int8" else ".onnx"
        if self._file(candidate, suffix).is_file() or (not candidate.cut and candidate.precision == "fp32"):
            return self.onnx(candidate)
        path = self._file(candidate, ".shape" + suffix)
        if path.is_file():
            return path
        if candidate.precision == "int8":
            parent = self.shape_onnx(Candidate(candidate.img_size, candidate.cut))
            self.runtime.quantize(parent, path, self.calib_images, draft=True)
        else:
            export_onnx(self.pruned(candidate.cut, shape_only=True), path, img_size=candidate.img_size, head="raw")
        return path

    def macs(self, candidate: Candidate) -> float:
        """Conv multiply-accumulates of ``candidate``'s shape (pruned, not reconstructed) at its size."""
        from ..export import deployable
        from ..model.cost import model_cost

        model = self.pruned(candidate.cut, shape_only=True) if candidate.cut else self.original
        return float(model_cost(deployable(model), candidate.img_size).macs)


class PlanMeasurer:
    """The ``score``, ``latency`` and ``retime`` functions of :func:`ascend_slim.compound.search` over
    :class:`CandidateModels` ``models`` (the delivered ones: fitted on the first images of ``fitting_pool``).

    ``folds`` splits the selection images for cross-fitting (see the module docstring); a fold's fitted
    candidates come from ``models.refitted`` on the first images of ``fitting_pool`` outside the fold. When no
    fitting image is a selection image, the folds are not needed and every candidate is scored as delivered.
    """

    def __init__(self, models: CandidateModels, selection: EvalDataset, default_size: int, *,
                 folds: Folds | None = None, fitting_pool: Sequence[Path] = (), latency_model: str = "measured",
                 latency_runs: int = 30) -> None:
        if latency_model not in LATENCY_MODELS:
            raise AscendSlimError(f"unknown latency model {latency_model!r}: choose {' or '.join(LATENCY_MODELS)}")
        self.models, self.selection = models, selection
        self.default_size, self.latency_model, self.latency_runs = default_size, latency_model, latency_runs
        self._reference_macs: float | None = None
        selection_paths = {Path(selection.image_path(i)).resolve() for i in selection.ids}
        overlap = any(Path(p).resolve() in selection_paths for p in [*models.recon_images, *models.calib_images])
        self.folds = folds if overlap else None
        if overlap and folds is None:
            raise AscendSlimError("the fitting images overlap the selection images: cross-fitting folds are needed")
        self.fold_models: list[CandidateModels] = []
        for k in range(self.folds.k if self.folds else 0):
            held = [selection.image_path(i) for i in self.folds.scored(k)]
            recon = self.folds.fitting(k, fitting_pool, held, len(models.recon_images))
            calib = self.folds.fitting(k, fitting_pool, held, len(models.calib_images))
            self.fold_models.append(models.refitted(models.folder / f"fold{k}", recon, calib))

    @property
    def estimated(self) -> bool:
        return self.latency_model == "flops"

    def _detections(self, path: Path, image_ids: Sequence[str], img_size: int) -> dict[str, np.ndarray]:
        return evaluate_file(path, ImageSubset(self.selection, list(image_ids)), img_size=img_size,
                             progress=False).detections

    def score(self, candidate: Candidate) -> MatchTable:
        """``candidate``'s match records on every selection image, each scored by a model not fitted on it."""
        if not self.fold_models or not fitted(candidate):
            detections = self._detections(self.models.onnx(candidate), self.selection.ids, candidate.img_size)
        else:
            detections = {}
            for k, models in enumerate(self.fold_models):
                scored = self.folds.scored(k)
                used = {Path(p).resolve() for p in [*models.recon_images, *models.calib_images]}
                if any(Path(self.selection.image_path(i)).resolve() in used for i in scored):
                    raise RuntimeError(f"fold {k} would score {candidate.key} on an image it was fitted on")
                detections.update(self._detections(models.onnx(candidate), scored, candidate.img_size))
        annotations = {i: self.selection.annotations[i] for i in self.selection.ids if i in detections}
        return MatchTable.from_detections(detections, annotations, self.selection.class_names)

    def data_use(self) -> dict:
        """Which images fitted and which scored: the plan report's account."""
        n, m = len(self.selection.ids), self.models
        delivered = (f"the delivered model is fitted on the first {len(m.recon_images)} (reconstruction, importance) "
                     f"/ {len(m.calib_images)} (calibration) training images and never scored on the selection split")
        if not self.fold_models:
            return {"summary": f"no fitting image is a selection image: every candidate scored on all {n} selection "
                               f"images as delivered; {delivered}", "folds": []}
        folds = self.folds
        return {"summary": f"{folds.k}-fold cross-fitting (seed {folds.seed}): a fitted candidate (cut or INT8) is "
                           f"built once per fold, fitted only on training images outside the fold, scored only on "
                           f"the fold; uncut FP32 candidates and the original (fitted to nothing) are scored on all "
                           f"{n} selection images; {delivered}",
                "folds": [{"fold": k, "scored": self.folds.scored(k),
                           "fitted": sorted({Path(p).name for p in [*fm.recon_images, *fm.calib_images]})}
                          for k, fm in enumerate(self.fold_models)]}

    def latency(self, candidate: Candidate) -> float:
        if candidate == Candidate(self.default_size):
            return 1.0  # the reference itself
        if self.estimated:
            if self._reference_macs is None:
                self._reference_macs = self.models.macs(Candidate(self.default_size))
            factor = INT8_FLOPS_FACTOR if candidate.precision == "int8" else 1.0
            return factor * self.models.macs(candidate) / self._reference_macs
        from ..report.latency import measure_latency

        reference = self.models.fp32_onnx(self.default_size, 0.0)
        original, timed = measure_latency([reference, self.models.shape_onnx(candidate)], threads=1,
                                          runs=self.latency_runs, runtime=self.models.runtime.name)
        return timed.median_ms / original.median_ms

    def retime(self, candidates: Sequence[Candidate], resamples: int = 1000) -> dict[Candidate, LatencyInterval]:
        """``candidates`` timed again side by side with the original, :data:`RETIME_FACTOR` x the rounds: the
        median ratio and its :data:`~ascend_slim.compound.objective.INTERVAL_LEVEL` interval (rounds resampled
        in pairs). An estimated latency model has nothing to re-time (its interval is a point)."""
        if self.estimated:
            return {c: LatencyInterval(r, r, r, 0) for c in candidates for r in [self.latency(c)]}
        from ..report.latency import measure_latency

        original = Candidate(self.default_size)
        timed = [c for c in candidates if c != original]
        runs = RETIME_FACTOR * self.latency_runs
        results = measure_latency([self.models.fp32_onnx(self.default_size, 0.0),
                                   *[self.models.shape_onnx(c) for c in timed]], threads=1, runs=runs,
                                  runtime=self.models.runtime.name)
        base = np.asarray(results[0].samples_ms)
        rounds = np.random.default_rng(0).integers(0, runs, size=(resamples, runs))
        tail = (1 - INTERVAL_LEVEL) / 2
        out = {original: LatencyInterval(1.0, 1.0, 1.0, runs)} if original in candidates else {}
        for c, result in zip(timed, results[1:]):
            samples = np.asarray(result.samples_ms)
            ratios = np.median(samples[rounds], axis=1) / np.median(base[rounds], axis=1)
            out[c] = LatencyInterval(float(np.median(samples) / np.median(base)), float(np.quantile(ratios, tail)),
                                     float(np.quantile(ratios, 1 - tail)), runs)
        return out

    def context(self, weights: str | Path, classes: str, split: str) -> dict:
        """What every measurement depends on besides the candidate (a cache made under another is refused)."""
        m = self.models
        return {"weights": file_sha256(weights)[:16], "classes": classes, "default_size": self.default_size,
                "selection": {"split": split, "images": len(self.selection.ids)}, "protocol": VAL_SETTINGS,
                "cut": {"planner": "uniform-removed", "importance": m.importance, "round_to": m.round_to},
                "reconstruction": {"images": len(m.recon_images), "samples_per_image": m.recon_samples},
                "calibration": {"images": len(m.calib_images)},
                "cross_fitting": self.folds.to_dict() if self.fold_models else None,
                **({"runtime": m.runtime.name} if m.runtime.name != "onnxruntime" else {}),
                "latency": {"model": self.latency_model, "threads": 1,
                            **({"runs": self.latency_runs} if not self.estimated else
                               {"int8_factor": INT8_FLOPS_FACTOR})}}
