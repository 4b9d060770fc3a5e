"""Network slimming end to end, one resumable run folder: from official weights to a smaller, faster model.

The recipe is :data:`SLIM_STAGES`, a list of :class:`Stage` run in order over one :class:`SlimRun` (the run
context: settings, folder, finished stages). Each stage writes its files into the run folder and returns a
typed result that is recorded in ``slim.json`` with its cost, so :meth:`SlimRun.resume` skips finished stages
(and a training stage continues an interrupted ``last.pt``). A stage whose ``enabled(config)`` is false is
skipped. Later stages read earlier results by stage name (:meth:`SlimRun.result`) and the model so far with
:meth:`SlimRun.model_checkpoint`, so a new stage is one :class:`Stage` entry plus its function.

1. ``sparsity`` — train with :class:`~ascend_slim.prune.sparsity.SparsityRegularizer` (L1 on every prunable
   BN γ) for ``sparsity_epochs`` (0 skips it): ``sparsity/weights/last.pt``, γ histograms under
   ``sparsity/sparsity/``.
2. ``prune`` — :func:`~ascend_slim.prune.prune_channels` by ``percent`` or ``target_latency`` (measured
   onnxruntime ratio at ``img_size``), kept widths rounded up to ``round_to``: ``pruned.pt``, ``prune.json``.
3. ``finetune`` — train the pruned model for ``finetune_epochs`` (0 skips it; no sparsity), distilled from the
   unpruned original when ``distill``: ``finetune/weights/last.pt``.
4. ``export`` — ``final.pt`` (the last model's weights) and ``final.onnx`` (static ``img_size``, raw heads),
   plus ``original.onnx`` for the comparisons.
5. ``evaluate`` — mAP of ``original.onnx`` and ``final.onnx`` on the validation split at ``img_size``
   (:func:`ascend_slim.evaluation.evaluate_file`, YOLOv5 ``val.py`` protocol): ``eval.json``.
6. ``latency`` — onnxruntime latency of both, side by side (round-robin medians), single-threaded and on all
   cores.
7. ``deploy`` — the Ascend 310 bundle of ``final.pt`` (only with ``deploy``).
8. ``report`` — ``report.md``, ``report.json``, ``report.png``.

Distillation, when on, is used in both training stages (the sparsified model drifts less from the teacher).
The teacher is the original model (``weights`` remapped to ``classes``). Last-epoch weights are used
throughout: nothing is selected on the validation split.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import AscendSlimError
from ..fileio import atomic_write_text
from ..model.checkpoint import load_training_state, load_weights, save_checkpoint
from ..model.remap import load_for_classes
from ..model.yolo import YOLOv5
from .slim_config import SlimConfig


# -- stage results (recorded in slim.json) ---------------------------------------------------------------------
@dataclass
class TrainResult:
    checkpoint: str  # the run's last.pt
    epochs: int
    last_row: dict  # the last results.csv row (empty when an earlier process finished the run)


@dataclass
class PruneResult:
    checkpoint: str  # pruned.pt
    summary: dict  # prune_channels' record without the kept indices (those are in prune.json)
    layers: list[dict]


@dataclass
class ExportResult:
    final_pt: str
    final_onnx: str
    original_onnx: str


@dataclass
class MapResult:
    split: str
    images: int
    img_size: int
    original: dict[str, float]  # METRIC_KEYS -> value
    final: dict[str, float]


@dataclass
class LatencyResult:
    runs: int
    machine: dict
    threads: dict[str, dict]  # "1 thread" / "all cores" -> original_ms, final_ms, ratio


@dataclass
class DeployResult:
    bundle: str


@dataclass
class ReportResult:
    report: str
    map: dict
    latency: dict


def _always(config: SlimConfig) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One step of the recipe: ``run(ctx)`` does the work in ``ctx.dir`` and returns a ``result_type``
    instance (a dataclass of JSON values); skipped when ``enabled(ctx.config)`` is false."""

    name: str
    run: Callable[[SlimRun], Any]
    result_type: type
    enabled: Callable[[SlimConfig], bool] = _always


@dataclass
class StageRecord:
    """What a finished stage produced and what it cost (wall-clock and CPU seconds of this process tree)."""

    seconds: float
    cpu_seconds: float
    result: dict


class SlimRun:
    """The run context: the validated ``config``, the run folder ``dir`` and the finished stages ``records``
    (name -> :class:`StageRecord`, in run order), persisted in ``slim.json``; ``stages`` is the recipe."""

    def __init__(self, config: SlimConfig, records: dict[str, StageRecord] | None = None,
                 stages: Sequence[Stage] | None = None) -> None:
        self.config = config
        self.dir = Path(config.save_dir)
        self.records: dict[str, StageRecord] = dict(records or {})
        self.stages: tuple[Stage, ...] = tuple(SLIM_STAGES if stages is None else stages)
        self._original: YOLOv5 | None = None

    @classmethod
    def create(cls, config: SlimConfig, stages: Sequence[Stage] | None = None) -> SlimRun:
        """A new run of ``config`` (validated here) in ``config.save_dir``, which must not hold a run yet."""
        config = config.validated()
        folder = Path(config.save_dir)
        if (folder / "slim.json").exists():
            raise AscendSlimError(f"{folder} already holds a slim run: resume it or choose another name")
        run = cls(config, stages=stages)
        folder.mkdir(parents=True, exist_ok=True)
        run.save()
        return run

    @classmethod
    def resume(cls, folder: str | Path, stages: Sequence[Stage] | None = None) -> SlimRun:
        """The run in ``folder`` as its ``slim.json`` recorded it (settings and finished stages)."""
        path = Path(folder) / "slim.json"
        if not path.is_file():
            raise AscendSlimError(f"no slim run to resume in {folder} (slim.json missing)")
        try:
            state = json.loads(path.read_text())
            config = SlimConfig.from_dict({**state["config"], "save_dir": str(folder)})
            records = {k: StageRecord(**v) for k, v in state["stages"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise AscendSlimError(f"{path} is malformed ({type(exc).__name__}: {exc})") from None
        return cls(config, records, stages)

    @property
    def state_path(self) -> Path:
        return self.dir / "slim.json"

    def save(self) -> None:
        state = {"config": self.config.to_dict(), "stages": {k: asdict(v) for k, v in self.records.items()}}
        atomic_write_text(self.state_path, json.dumps(state, indent=2) + "\n")

    def path(self, name: str) -> Path:
        return self.dir / name

    def result(self, name: str) -> Any:
        """The typed result of the finished stage ``name``, or None when it was skipped or has not run."""
        if name not in self.records:
            return None
        stage = next((s for s in self.stages if s.name == name), None)
        if stage is None:
            raise AscendSlimError(f"{self.state_path} records stage {name!r}, which this recipe does not have")
        return stage.result_type(**self.records[name].result)

    def model_checkpoint(self) -> str | None:
        """The checkpoint of the newest model so far (the last finished stage whose result has one); None: the
        original model."""
        for stage in reversed(self.stages):
            checkpoint = getattr(self.result(stage.name), "checkpoint", None)
            if checkpoint:
                return checkpoint
        return None

    def original_model(self) -> YOLOv5:
        """The unpruned starting model (``weights`` remapped to ``classes``); loaded once."""
        if self._original is None:
            self._original = load_for_classes(self.config.weights, self.config.classes)[0]
        return self._original

    def current_model(self) -> YOLOv5:
        checkpoint = self.model_checkpoint()
        return load_weights(checkpoint)[0] if checkpoint else self.original_model()

    def run_stage(self, stage: Stage) -> None:
        """Run ``stage`` unless it finished already or is disabled; its result is recorded with its cost."""
        if stage.name in self.records:
            print(f"slim: stage {stage.name} already done, skipped")
            return
        if not stage.enabled(self.config):
            return
        print(f"slim: stage {stage.name}")
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        result = stage.run(self)
        if not isinstance(result, stage.result_type):
            raise TypeError(f"stage {stage.name} returned {type(result).__name__}, not {stage.result_type.__name__}")
        self.records[stage.name] = StageRecord(round(time.perf_counter() - start, 2),
                                               round(_cpu_seconds() - cpu_start, 2), asdict(result))
        self.save()

    def run(self) -> SlimRun:
        """Run every stage of the recipe that has not finished, in order."""
        for stage in self.stages:
            self.run_stage(stage)
        return self


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (loader workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# -- the stages ---------------------------------------------------------------------------------------------------
def _finished(last: Path) -> bool | None:
    """None: no checkpoint yet; False: an interrupted run (training state inside); True: a finished run."""
    if not last.is_file():
        return None
    try:
        load_training_state(last)
    except AscendSlimError:  # the state is stripped when a run finishes
        return True
    return False


def _train(run: SlimRun, stage: str, epochs: int, sparsity: float) -> TrainResult:
    """Train the current model for ``epochs`` in ``<run>/<stage>``, continuing an interrupted ``last.pt``."""
    from ..train.builder import build_trainer
    from .callbacks import training_callbacks

    c = run.config
    folder = run.path(stage)
    last = folder / "weights" / "last.pt"
    finished = _finished(last)
    if finished:
        return TrainResult(str(last), epochs, {})
    source = run.model_checkpoint() or c.weights
    callbacks = training_callbacks(sparsity=sparsity, sparsity_decay=c.sparsity_decay, sparsity_beta=c.sparsity_beta,
                                   distill=c.weights if c.distill else None, distill_weight=c.distill_weight,
                                   distill_images=c.distill_images)
    config = replace(c.train, weights=source, epochs=epochs, save_dir=str(folder))
    trainer = build_trainer(config, callbacks, model=run.current_model())
    if finished is False:
        print(f"slim: resuming {stage} from {last}")
        trainer.restore(last)
    return TrainResult(str(last), epochs, trainer.fit())


def sparsity_stage(run: SlimRun) -> TrainResult:
    return _train(run, "sparsity", run.config.sparsity_epochs, run.config.sparsity_rate)


def prune_stage(run: SlimRun) -> PruneResult:
    from ..prune import prune_channels

    c = run.config
    result = prune_channels(run.current_model().eval(), method="slim", percent=c.percent,
                            target_latency=c.target_latency, round_to=c.round_to, min_keep=c.min_keep,
                            img_size=c.img_size, fold_bias=c.fold_bias, force=True, latency_runs=c.latency_runs)
    path = save_checkpoint(run.path("pruned.pt"), result.model, img_size=c.img_size)
    atomic_write_text(run.path("prune.json"), json.dumps({**result.record, "layers": result.table}, indent=2) + "\n")
    return PruneResult(str(path), {k: v for k, v in result.record.items() if k != "kept"}, result.table)


def finetune_stage(run: SlimRun) -> TrainResult:
    return _train(run, "finetune", run.config.finetune_epochs, 0.0)


def export_stage(run: SlimRun) -> ExportResult:
    from ..export import export_onnx

    c = run.config
    model, info = load_weights(run.model_checkpoint())
    final_pt = save_checkpoint(run.path("final.pt"), model, img_size=c.img_size, history=info["history"])
    final_onnx = export_onnx(model, run.path("final.onnx"), img_size=c.img_size, head="raw")
    original_onnx = export_onnx(run.original_model(), run.path("original.onnx"), img_size=c.img_size, head="raw")
    return ExportResult(str(final_pt), str(final_onnx), str(original_onnx))


def _models(run: SlimRun) -> dict[str, str]:
    exported = run.result("export")
    return {"original": exported.original_onnx, "final": exported.final_onnx}


def evaluate_stage(run: SlimRun) -> MapResult:
    from ..evaluation import evaluate_file, evaluation_set, headline_metrics

    c = run.config
    dataset = evaluation_set(c.data, c.train.val_split, class_names=run.original_model().names)
    maps = {key: headline_metrics(evaluate_file(path, dataset, img_size=c.img_size).result)
            for key, path in _models(run).items()}
    result = MapResult(c.train.val_split, len(dataset.ids), c.img_size, maps["original"], maps["final"])
    atomic_write_text(run.path("eval.json"), json.dumps(asdict(result), indent=2) + "\n")
    return result


def latency_stage(run: SlimRun) -> LatencyResult:
    from ..report.latency import measure_latency
    from ..report.machine import cpu_info

    c, models = run.config, _models(run)
    threads = {}
    for count, key in ((1, "1 thread"), (0, "all cores")):
        original, final = measure_latency([models["original"], models["final"]], threads=count, runs=c.latency_runs,
                                          img_size=c.img_size)
        threads[key] = {"original_ms": original.median_ms, "final_ms": final.median_ms,
                        "ratio": final.median_ms / original.median_ms}
    return LatencyResult(c.latency_runs, cpu_info(), threads)


def deploy_stage(run: SlimRun) -> DeployResult:
    from ..ascend.bundle import deploy

    c = run.config
    out = deploy(run.result("export").final_pt, c.deploy, img_size=c.img_size, soc=c.soc, force=True)
    return DeployResult(str(out))


def report_stage(run: SlimRun) -> ReportResult:
    from .slim_report import write_report

    return ReportResult(**write_report(run))


SLIM_STAGES: tuple[Stage, ...] = (
    Stage("sparsity", sparsity_stage, TrainResult, enabled=lambda c: c.sparsity_epochs > 0),
    Stage("prune", prune_stage, PruneResult),
    Stage("finetune", finetune_stage, TrainResult, enabled=lambda c: c.finetune_epochs > 0),
    Stage("export", export_stage, ExportResult),
    Stage("evaluate", evaluate_stage, MapResult),
    Stage("latency", latency_stage, LatencyResult),
    Stage("deploy", deploy_stage, DeployResult, enabled=lambda c: bool(c.deploy)),
    Stage("report", report_stage, ReportResult),
)
STAGES = tuple(s.name for s in SLIM_STAGES)


def slim(config: SlimConfig) -> SlimRun:
    """Run the slim recipe of ``config`` in a new run folder ``config.save_dir`` (see the module docstring);
    ``SlimRun.resume(folder).run()`` continues an interrupted one. Returns the run with every stage's record."""
    return SlimRun.create(config).run()


__all__ = ["SLIM_STAGES", "STAGES", "DeployResult", "ExportResult", "LatencyResult", "MapResult", "PruneResult",
           "ReportResult", "SlimConfig", "SlimRun", "Stage", "StageRecord", "TrainResult", "slim"]
