"""The models and measurements behind the slim recipe's compound plan (:mod:`ascend_slim.compound`).

:class:`CandidateModels` makes and keeps, in one folder, every file a candidate needs:

- a channel cut ``f`` is a uniform plan (:func:`~ascend_slim.prune.uniform.plan_uniform`: ``f`` of every group,
  least important channels first by the chosen importance, kept widths rounded to ``round_to``) of the original;
  its scored model is the pruned model re-fitted to the original by least-squares reconstruction
  (:func:`~ascend_slim.prune.reconstruct.reconstruct`, unlabelled images letterboxed at the candidate's size);
  its *shape* (enough to time it) is the pruned model before reconstruction;
- every candidate runs as a static raw-head ONNX export at its size, INT8 ones as the INT8 model of the target
  runtime's own quantizer (:class:`~ascend_slim.cpu_runtimes.CpuRuntime`: onnxruntime static QDQ, or an NNCF
  OpenVINO IR), calibrated on unlabelled images.

:class:`PlanMeasurer` gives the search its two functions: ``score`` (the candidate's per-image match records on
the labelled selection split, with the validation protocol) and ``latency`` (its latency over the original's
at the default size: measured on the target runtime, one thread, side by side with the original, or estimated from
conv FLOPs for accelerators whose latency tracks them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from ..compound import Candidate
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

    def _file(self, candidate: Candidate, suffix: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{candidate.key}{suffix}"

    @property
    def graph(self) -> ChannelGraph:
        if self._graph is None:
            self._graph = build_graph(self.original)
        return self._graph

    def cut_plan(self, cut: float) -> PrunePlan:
        """The uniform plan of cut level ``cut`` (importance scored once, on the original)."""
        from ..prune.uniform import plan_uniform

        if self._scores is None:
            self._scores = self._importance()(self.original, self.graph)
        if cut not in self._plans:
            self._plans[cut] = plan_uniform(self.graph, self._scores, cut, round_to=self.round_to)
        return self._plans[cut]

    def _importance(self):
        from ..prune.importance import ConsumerOutputImportance, get_importance

        if self.importance == "output":
            if not self.recon_images:
                raise AscendSlimError("the output importance needs images (the reconstruction images)")
            return ConsumerOutputImportance(self.recon_images, img_size=self.importance_size)
        return get_importance(self.importance)

    def pruned(self, cut: float, shape_only: bool = False) -> YOLOv5:
        """The original pruned at ``cut``, not reconstructed. ``shape_only``: the same widths with channels chosen
        by BN |γ| (free), enough to time the cut before paying for the importance criterion."""
        from ..prune.importance import BNScaleImportance
        from ..prune.surgery import prune_model
        from ..prune.uniform import plan_uniform

        if shape_only:
            keep = plan_uniform(self.graph, BNScaleImportance()(self.original, self.graph), cut,
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
    """The ``score`` and ``latency`` functions of :func:`ascend_slim.compound.search` over :class:`CandidateModels`."""

    def __init__(self, models: CandidateModels, selection: EvalDataset, default_size: int, *,
                 latency_model: str = "measured", latency_runs: int = 30) -> None:
        if latency_model not in LATENCY_MODELS:
            raise AscendSlimError(f"unknown latency model {latency_model!r}: choose {' or '.join(LATENCY_MODELS)}")
        self.models, self.selection = models, selection
        self.default_size, self.latency_model, self.latency_runs = default_size, latency_model, latency_runs
        self._reference_macs: float | None = None

    @property
    def estimated(self) -> bool:
        return self.latency_model == "flops"

    def score(self, candidate: Candidate) -> MatchTable:
        found = evaluate_file(self.models.onnx(candidate), self.selection, img_size=candidate.img_size,
                              progress=False)
        annotations = {i: self.selection.annotations[i] for i in self.selection.ids if i in found.detections}
        return MatchTable.from_detections(found.detections, annotations, self.selection.class_names)

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

    def context(self, weights: str | Path, classes: str, split: str) -> dict:
        """What every measurement depends on besides the candidate (a cache made under another is refused)."""
        m = self.models
        return {"weights": file_sha256(weights)[:16], "classes": classes, "default_size": self.default_size,
                "selection": {"split": split, "images": len(self.selection.ids)}, "protocol": VAL_SETTINGS,
                "cut": {"planner": "uniform", "importance": m.importance, "round_to": m.round_to},
                "reconstruction": {"images": len(m.recon_images), "samples_per_image": m.recon_samples},
                "calibration": {"images": len(m.calib_images)},
                **({"runtime": m.runtime.name} if m.runtime.name != "onnxruntime" else {}),
                "latency": {"model": self.latency_model, "threads": 1,
                            **({"runs": self.latency_runs} if not self.estimated else
                               {"int8_factor": INT8_FLOPS_FACTOR})}}
