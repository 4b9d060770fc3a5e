"""Compound slimming end to end, one resumable run folder: from official weights to a smaller, faster model.

The recipe is :data:`SLIM_STAGES`, a list of :class:`Stage` run in order over one :class:`SlimRun` (the run
context: settings, folder, finished stages). Each stage writes its files into the run folder and returns a
typed result that is recorded in ``slim.json`` with its cost, so :meth:`SlimRun.resume` skips finished stages
(and a training stage continues an interrupted ``last.pt``). A stage whose ``enabled(run)`` is false is
skipped. The folder is made exclusively (:meth:`SlimRun.create`); records keep the run's own files relative to it
and inputs absolute, so a run folder can be copied or moved; :meth:`SlimRun.with_settings` lets a resumed run
aim at another objective. Later stages read earlier results by stage name (:meth:`SlimRun.result`) and the model
so far with :meth:`SlimRun.model_checkpoint`, so a new stage is one :class:`Stage` entry plus its function.

1. ``sparsity`` — optional (``sparsity_epochs`` > 0): train with L1 on every prunable BN γ.
2. ``plan`` — the compound search (:mod:`ascend_slim.compound`) over input size × channel cut × precision,
   every candidate measured (selection-split mAP with a paired bootstrap against the original, latency ratio)
   and cached under ``plan/``; the Pareto report ``plan/plan.{png,md,json}``. With ``plan_only`` the run ends here.
3. ``prune`` — the chosen cut (a uniform plan, only when the choice cuts channels): ``pruned.pt``, ``prune.json``.
4. ``reconstruct`` — least-squares reconstruction of the pruned layers on unlabelled training images at the
   chosen size: ``reconstructed.pt``.
5. ``finetune`` — optional (``finetune_epochs`` > 0), distilled from the original when ``distill``, BatchNorm
   statistics frozen with ``freeze_bn``.
6. ``export`` — ``final.pt`` (saved for the chosen size, the plan in its history) and its static FP32 ONNX at the
   chosen size (``final.onnx``, or ``final-fp32.onnx`` when INT8 follows), plus ``original.onnx`` at ``img_size``;
   for ``runtime`` openvino an FP32 choice is converted to ``final.xml``.
7. ``quantize`` — when INT8 was chosen: ``final.onnx`` (onnxruntime static QDQ) or ``final.xml`` (OpenVINO, NNCF),
   the ``runtime``'s quantizer calibrated as in the plan.
8. ``evaluate`` — mAP of the original and the final model (each at its own size, on ``runtime``) on the evaluation
   split (``train.val_split``), reference protocol: ``eval.json``.
9. ``latency`` — latency of both on ``runtime``, side by side (round-robin medians), 1 thread and all cores.
10. ``deploy`` — the Ascend 310 bundle of ``final.pt`` at the chosen size, with the AMCT config when INT8 (only
    with ``deploy``).
11. ``report`` — ``report.md``, ``report.json``, ``report.png``.

Nothing is chosen on the evaluation split: the plan scores on ``select_split`` (never ``test``), reconstruction
and calibration use unlabelled images of the training split, training stages keep their last-epoch weights.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from ..compound import Candidate
from ..errors import AscendSlimError
from ..fileio import atomic_write_text, check_apart, claim_run_dir, create_new_file, file_sha256
from ..model.checkpoint import load_training_state, load_weights, save_checkpoint
from ..model.remap import load_for_classes
from ..model.yolo import YOLOv5
from ..profiling import cpu_seconds
from .slim_config import SlimConfig


# -- stage results (recorded in slim.json) ---------------------------------------------------------------------
def run_path() -> Any:
    """A result field holding a path: recorded relative to the run folder when it lies inside (a run folder can be
    copied or moved), absolute otherwise; :meth:`SlimRun.result` gives it back as a path in the folder."""
    return field(metadata={"path": True})


@dataclass
class TrainResult:
    checkpoint: str = run_path()  # the run's last.pt
    epochs: int
    last_row: dict  # the last results.csv row (empty when an earlier process finished the run)


@dataclass
class PlanResult:
    chosen: dict | None  # Candidate.to_dict() of the choice; None with plan_only and no objective
    met: bool | None
    message: str
    scored: int  # candidates measured (this run and earlier ones)
    scored_now: int
    cpu_seconds: float  # the whole search's CPU time
    report: str = run_path()  # plan/plan.md
    contributions: list[dict]  # what each dimension adds (size alone, + cut, + INT8)
    curve: list[dict] = field(default_factory=list)  # selection mAP and speed of every uncut FP32 input size
    latency_flag: str = ""  # the chosen latency interval straddles the budget
    selection_estimate: dict | None = None  # the chosen one's estimate corrected for the winner's curse


@dataclass
class PruneResult:
    checkpoint: str = run_path()  # pruned.pt
    summary: dict  # the plan (fraction removed, round-to), parameters and GFLOPs before/after
    layers: list[dict]


@dataclass
class ReconstructResult:
    checkpoint: str = run_path()  # reconstructed.pt
    report: dict  # per-layer errors before/after, settings, cost (of the plan's reconstruction if reused)


@dataclass
class ExportResult:
    final_pt: str = run_path()
    final_onnx: str = run_path()  # the FP32 export (the final model unless INT8 follows)
    original_onnx: str = run_path()
    img_size: int  # the chosen input size


@dataclass
class QuantizeResult:
    final_onnx: str = run_path()
    float_nodes: list[str]
    calibration_batches: int


@dataclass
class MapResult:
    split: str
    images: int
    img_size: dict[str, int]  # original / final -> input size
    original: dict[str, float]  # HEADLINE_METRICS -> value
    final: dict[str, float]


@dataclass
class LatencyResult:
    runs: int
    machine: dict
    threads: dict[str, dict]  # "1 thread" / "all cores" -> original_ms, final_ms, ratio
    runtime: str = "onnxruntime"  # the CPU runtime both were timed on


@dataclass
class DeployResult:
    bundle: str = run_path()


@dataclass
class ReportResult:
    report: str = run_path()
    map: dict
    latency: dict


def _always(run: SlimRun) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One step of the recipe: ``run(ctx)`` does the work in ``ctx.dir`` and returns a ``result_type``
    instance (a dataclass of JSON values); skipped when ``enabled(ctx)`` is false."""

    name: str
    run: Callable[[SlimRun], Any]
    result_type: type
    enabled: Callable[[SlimRun], bool] = _always


@dataclass
class StageRecord:
    """What a finished stage produced and what it cost (wall-clock and CPU seconds of this process tree)."""

    seconds: float
    cpu_seconds: float
    result: dict


RESUMABLE_SETTINGS = ("target_latency", "max_drop", "confidence", "plan_only")  # what a resumed run may change
OBJECTIVE_SETTINGS = ("target_latency", "max_drop", "confidence")


def _portable(result: dict, result_type: type, folder: Path) -> dict:
    """``result`` (a stage result as a dict) with its path fields relative to ``folder`` when inside it."""
    base = os.path.abspath(folder)
    out = dict(result)
    for f in fields(result_type):
        if f.metadata.get("path") and out.get(f.name):
            absolute = os.path.abspath(out[f.name])
            inside = os.path.commonpath([absolute, base]) == base
            out[f.name] = Path(os.path.relpath(absolute, base)).as_posix() if inside else absolute
    return out


def _located(record: dict, result_type: type, folder: Path) -> dict:
    """The inverse of :func:`_portable`: relative path fields become paths in ``folder`` (where the run is now)."""
    out = dict(record)
    for f in fields(result_type):
        if f.metadata.get("path") and out.get(f.name) and not os.path.isabs(out[f.name]):
            out[f.name] = str(folder / out[f.name])
    return out


class SlimRun:
    """The run context: the validated ``config``, the run folder ``dir`` and the finished stages ``records``
    (name -> :class:`StageRecord`, in run order), persisted in ``slim.json``; ``stages`` is the recipe.
    ``outputs``: folders outside the run folder that this run created (its deploy bundle), each recorded with the
    run folder that made it, so a copy of the run never replaces the original's."""

    def __init__(self, config: SlimConfig, records: dict[str, StageRecord] | None = None,
                 stages: Sequence[Stage] | None = None, outputs: Sequence[dict] = ()) -> None:
        self.config = config
        self.dir = Path(config.save_dir)
        self.records: dict[str, StageRecord] = dict(records or {})
        self.stages: tuple[Stage, ...] = tuple(SLIM_STAGES if stages is None else stages)
        self.outputs: list[dict] = list(outputs)
        self._original: YOLOv5 | None = None
        self._models = None
        self._created_dir = self._fresh = False  # this process made the run folder / its slim.json

    @classmethod
    def create(cls, config: SlimConfig, stages: Sequence[Stage] | None = None, *, exist_ok: bool = False,
               increment: bool = False) -> SlimRun:
        """A new run of ``config`` (validated here; the model's classes and every split checked against the data)
        in the folder ``config.save_dir``, created exclusively: an existing one is refused, or with ``increment``
        the next free ``save_dir2``, ``save_dir3``, ... is taken, or with ``exist_ok`` it is used when it holds no
        slim run. ``deploy`` may not be, hold or lie inside the run folder or an input."""
        config = config.validated()
        run = cls(config, stages=stages)
        run.check_deploy()
        if not increment and run.state_path.exists():
            raise AscendSlimError(f"{run.dir} already holds a slim run: resume it (--resume) or choose another name")
        run.check_data()
        folder, created = claim_run_dir(config.save_dir, exist_ok=exist_ok, increment=increment)
        try:
            if folder != Path(config.save_dir):
                run = cls(replace(config, save_dir=str(folder)), stages=stages)
            run.check_deploy()
            try:
                create_new_file(run.state_path)  # exclusive: of two runs given one folder, one gets it
            except FileExistsError:
                raise AscendSlimError(f"{folder} already holds a slim run: resume it (--resume) or choose another "
                                      "name") from None
        except BaseException:
            if created:
                folder.rmdir()
            raise
        run._created_dir, run._fresh = created, True
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
            outputs = [dict(o) for o in state.get("outputs", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AscendSlimError(f"{path} is malformed ({type(exc).__name__}: {exc})") from None
        run = cls(config, records, stages, outputs)
        for name in records:
            run.result(name)  # a damaged record is found now, not after hours of work
        return run

    def with_settings(self, config: SlimConfig, names: Callable[[str], str] = str) -> SlimRun:
        """This run going on with ``config``, which may differ from the run's settings only in the objective and
        ``plan_only`` (``names`` turns a setting's name into what the caller calls it, e.g. a flag).

        A new objective after the plan re-chooses from the plan's measurements (scoring only candidates it newly
        needs) and every stage after the plan runs again; so does a plan-only run told to build."""
        changed = [f.name for f in fields(SlimConfig) if getattr(config, f.name) != getattr(self.config, f.name)
                   and f.name != "save_dir"]
        fixed = [name for name in changed if name not in RESUMABLE_SETTINGS]
        if fixed:
            raise AscendSlimError(f"{', '.join(map(names, fixed))} cannot change when resuming (the run's settings "
                                  "are in its slim.json): drop them, or start a new run")
        config = replace(config, save_dir=self.config.save_dir)
        if not config.objective.given and not config.plan_only:
            raise AscendSlimError("give --target-latency and/or --max-drop (what the plan optimises) to build")
        records = dict(self.records)
        plan = self.result("plan")
        rechoose = any(name in OBJECTIVE_SETTINGS for name in changed) or (
            plan is not None and plan.chosen is None and not config.plan_only)
        if plan is not None and rechoose:
            later = [s.name for s in self.stages[[s.name for s in self.stages].index("plan"):]]
            records = {k: v for k, v in records.items() if k not in later}
            shutil.rmtree(self.path("finetune"), ignore_errors=True)  # trained for the old choice
        run = SlimRun(config, records, self.stages, self.outputs)
        run.save()
        return run

    def with_objective(self, target_latency: float | None, max_drop: float | None, confidence: float) -> SlimRun:
        """This run aiming at another objective (see :meth:`with_settings`)."""
        return self.with_settings(replace(self.config, target_latency=target_latency, max_drop=max_drop,
                                          confidence=confidence))

    @property
    def state_path(self) -> Path:
        return self.dir / "slim.json"

    def save(self) -> None:
        state = {"config": self.config.to_dict(), "stages": {k: asdict(v) for k, v in self.records.items()},
                 "outputs": self.outputs}
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
        try:
            return stage.result_type(**_located(self.records[name].result, stage.result_type, self.dir))
        except (TypeError, AttributeError) as exc:
            raise AscendSlimError(f"{self.state_path}: the record of stage {name!r} is damaged ({exc}); restore "
                                  "the file or start a new run") from None

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

    def check_data(self) -> None:
        """Before any work: the model's classes are the data's, and every split the run reads loads, the labelled
        ones (selection, evaluation) hold labelled objects, and the selection shares no image with the
        evaluation split (nor with the training split when the run trains)."""
        from ..evaluation import evaluation_set

        c = self.config
        splits = {"selection": c.select_split, "evaluation": c.train.val_split, "training": c.train.train_split}
        sets: dict[str, Any] = {}
        loaded = {}
        for role, split in splits.items():
            if role != "training" or c.trains or c.cuts or c.int8:
                sets[split] = sets.get(split) or evaluation_set(c.data, split)
                loaded[role] = (split, sets[split])
        names = tuple(self.original_model().names)
        data_names = tuple(loaded["selection"][1].class_names)
        if names != data_names:
            hint = " (add --classes voc)" if len(data_names) == 20 and len(names) == 80 else \
                " (remap it with --classes, or train it on this data first)"
            raise AscendSlimError(f"{c.weights} predicts {len(names)} classes ({', '.join(names[:3])}, ...) "
                                  f"but {c.data} has {len(data_names)} ({', '.join(data_names[:3])}, ...)"
                                  f"{hint}")
        for role in ("selection", "evaluation"):
            split, dataset = loaded[role]
            objects = sum(int((~a.difficult).sum()) for a in dataset.annotations.values())
            if not objects:
                raise AscendSlimError(f"the {role} split {split} of {c.data} has no labelled object (mAP would be "
                                      "undefined): choose a labelled split")
        selected = set(loaded["selection"][1].ids)
        for role in ("evaluation", "training"):
            if role not in loaded or (role == "training" and not c.trains):
                continue
            split, dataset = loaded[role]
            shared = selected & set(dataset.ids)
            if shared:
                raise AscendSlimError(
                    f"the selection split {c.select_split} shares {len(shared)} image(s) with the {role} split "
                    f"{split} (e.g. {min(shared)}): the plan would choose on images it is "
                    f"{'evaluated' if role == 'evaluation' else 'trained'} on; select on a split apart from it")

    def check_deploy(self) -> None:
        """``deploy`` may not be, hold or lie inside the run folder or an input (replacing it would destroy them)."""
        c = self.config
        if c.deploy:
            check_apart("--deploy", c.deploy, [("the run folder", self.dir), ("--weights", c.weights),
                                               ("--data", c.data), ("--distill-images", c.distill_images)])

    def owns(self, folder: str | Path) -> bool:
        """Whether this run (in its present folder) created ``folder`` outside it."""
        entry = {"path": os.path.abspath(folder), "run": os.path.realpath(self.dir)}
        return entry in self.outputs

    def claim_output(self, folder: str | Path) -> None:
        entry = {"path": os.path.abspath(folder), "run": os.path.realpath(self.dir)}
        if entry not in self.outputs:
            self.outputs.append(entry)
            self.save()

    def chosen(self) -> Candidate | None:
        """The plan's choice (None before the plan, or when it only drew the frontier)."""
        plan = self.result("plan")
        return Candidate.from_dict(plan.chosen) if plan and plan.chosen else None

    def training_images(self, count: int) -> list[Path]:
        """The first ``count`` images of the training split (unlabelled use: reconstruction, calibration)."""
        from ..evaluation import evaluation_set

        images = evaluation_set(self.config.data, self.config.train.train_split)
        return [images.image_path(i) for i in images.ids[:count]]

    def candidate_models(self):
        """The plan's :class:`~.slim_plan.CandidateModels` (files under ``plan/models``)."""
        from .slim_plan import CandidateModels

        if self._models is None:
            c = self.config
            original = load_weights(self.model_checkpoint())[0] if self.model_checkpoint() else self.original_model()
            self._models = CandidateModels(
                original, self.path("plan/models"), importance=c.importance, round_to=c.round_to,
                importance_size=c.img_size, recon_images=self.training_images(c.recon_images) if c.cuts else [],
                recon_samples=c.recon_samples, calib_images=self.training_images(c.calib_images) if c.int8 else [],
                runtime=c.runtime)
        return self._models

    def run_stage(self, stage: Stage) -> None:
        """Run ``stage`` unless it finished already or is disabled; its result is recorded with its cost."""
        if stage.name in self.records:
            print(f"slim: stage {stage.name} already done, skipped")
            return
        if not stage.enabled(self):
            return
        print(f"slim: stage {stage.name}")
        start, cpu_start = time.perf_counter(), cpu_seconds()
        result = stage.run(self)
        if not isinstance(result, stage.result_type):
            raise TypeError(f"stage {stage.name} returned {type(result).__name__}, not {stage.result_type.__name__}")
        self.records[stage.name] = StageRecord(round(time.perf_counter() - start, 2),
                                               round(cpu_seconds() - cpu_start, 2),
                                               _portable(asdict(result), stage.result_type, self.dir))
        self.save()

    def run(self) -> SlimRun:
        """Run every stage of the recipe that has not finished, in order. A run that fails before any stage left
        anything behind leaves no slim.json, and no folder when it made the folder."""
        try:
            for stage in self.stages:
                self.run_stage(stage)
        except BaseException:
            if self._fresh and not self.records and [p.name for p in self.dir.iterdir()] == ["slim.json"]:
                self.state_path.unlink()
                if self._created_dir:
                    self.dir.rmdir()
            raise
        return self


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


def _train(run: SlimRun, stage: str, epochs: int, sparsity: float, freeze_bn: bool = False) -> TrainResult:
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
                                   distill_images=c.distill_images, freeze_bn=freeze_bn)
    chosen = run.chosen()
    size = c.train.img_size or (chosen.img_size if chosen else c.img_size)
    config = replace(c.train, weights=source, epochs=epochs, save_dir=str(folder), img_size=size)
    trainer = build_trainer(config, callbacks, model=run.current_model())
    if finished is False:
        print(f"slim: resuming {stage} from {last}")
        trainer.restore(last)
    return TrainResult(str(last), epochs, trainer.fit())


def sparsity_stage(run: SlimRun) -> TrainResult:
    return _train(run, "sparsity", run.config.sparsity_epochs, run.config.sparsity_rate)


def plan_stage(run: SlimRun) -> PlanResult:
    from ..compound import search
    from ..compound.crossfit import Folds
    from ..compound.measurement import tie_folder
    from ..compound.report import contributions, size_curve, write_report
    from ..evaluation import evaluation_set
    from .slim_plan import CandidateModels, PlanMeasurer

    c = run.config
    selection = evaluation_set(c.data, c.select_split, class_names=run.original_model().names)
    c.objective.check_images(len(selection.ids))
    pool = run.training_images(max(c.recon_images, c.calib_images) + len(selection.ids))
    measurer = PlanMeasurer(run.candidate_models(), selection, c.img_size, folds=Folds.split(
        selection.ids, c.folds, c.fold_seed), fitting_pool=pool, latency_model=c.latency_model,
        latency_runs=c.latency_runs)
    context = measurer.context(run.model_checkpoint() or c.weights, c.classes, c.select_split)  # the model measured
    reference = None
    if run.model_checkpoint():  # sparsity-trained: the floor compares with the original weights, as the report does
        originals = CandidateModels(run.original_model(), run.path("plan/reference"), progress=False)
        reference = partial(PlanMeasurer(originals, selection, c.img_size).score, Candidate(c.img_size))
        context["reference"] = {"weights": file_sha256(c.weights)[:16], "classes": c.classes}
    tie_folder(run.path("plan"), context)  # every file under plan/ belongs to these settings
    result = search(c.space, c.objective, measurer.score, measurer.latency, run.path("plan/measurements.json"),
                    context, latency_estimated=measurer.estimated, retime=measurer.retime,
                    data_use=measurer.data_use(), reference=reference)
    paths = write_report(result, run.path("plan"))
    plan = result.plan
    print(f"slim: plan: {plan.message} ({len(result.measurements)} candidates scored, {result.scored_now} now; "
          f"{result.cpu_seconds / 60:.1f} CPU min); report {paths['markdown']}")
    if plan.latency_flag:
        print(f"slim: plan: flag: {plan.latency_flag}")
    if plan.met is False:
        raise AscendSlimError(f"{plan.message}. No model was written; the measurements are kept: resume with another "
                              f"--target-latency or --max-drop (see {paths['markdown']})")
    return PlanResult(plan.chosen.candidate.to_dict() if plan.chosen else None, plan.met, plan.message,
                      len(result.measurements), result.scored_now, result.cpu_seconds, str(paths["markdown"]),
                      contributions(result), size_curve(result), plan.latency_flag,
                      plan.estimate.to_dict() if plan.estimate else None)


def _builds(run: SlimRun) -> bool:
    return not run.config.plan_only


def _cuts(run: SlimRun) -> bool:
    chosen = run.chosen()
    return _builds(run) and chosen is not None and chosen.cut > 0


def prune_stage(run: SlimRun) -> PruneResult:
    from ..prune.planner import layer_table

    chosen, models = run.chosen(), run.candidate_models()
    plan = models.cut_plan(chosen.cut)
    pruned = models.pruned(chosen.cut)
    pruned.history.append({"action": "prune_channels", "planner": "uniform", "fraction": chosen.cut,
                           "removed": plan.percent, "importance": run.config.importance,
                           "round_to": run.config.round_to})
    path = save_checkpoint(run.path("pruned.pt"), pruned, img_size=chosen.img_size)
    table = layer_table(models.original, pruned, chosen.img_size)
    summary = {"fraction": chosen.cut, "removed": plan.percent, "round_to": plan.round_to,
               **{key: [sum(r[f"{key}_before"] for r in table), sum(r[f"{key}_after"] for r in table)]
                  for key in ("params", "gflops")}}
    atomic_write_text(run.path("prune.json"), json.dumps({**summary, "kept": {k: v.tolist() for k, v in zip(
        [g.units[0] for g in models.graph.groups], plan.keep)}, "layers": table}, indent=2) + "\n")
    return PruneResult(str(path), summary, table)


def reconstruct_stage(run: SlimRun) -> ReconstructResult:
    chosen = run.chosen()
    model, report = run.candidate_models().reconstructed(chosen.img_size, chosen.cut)
    path = save_checkpoint(run.path("reconstructed.pt"), model, img_size=chosen.img_size)
    return ReconstructResult(str(path), report)


def finetune_stage(run: SlimRun) -> TrainResult:
    return _train(run, "finetune", run.config.finetune_epochs, 0.0, run.config.freeze_bn)


def export_stage(run: SlimRun) -> ExportResult:
    from ..cpu_runtimes import cpu_runtime
    from ..export import export_onnx

    c, chosen = run.config, run.chosen()
    checkpoint = run.model_checkpoint()
    model = load_weights(checkpoint)[0] if checkpoint else run.original_model()
    plan = run.result("plan")
    history = [*model.history, {"action": "slim_plan", "chosen": plan.chosen, "objective": c.objective.to_dict(),
                                "selection": c.select_split, "message": plan.message}]  # final.pt's, not the model's
    final_pt = save_checkpoint(run.path("final.pt"), model, img_size=chosen.img_size, history=history)
    runtime = cpu_runtime(c.runtime)
    as_is = chosen.precision == "fp32" and runtime.suffix == ".onnx"  # else quantized or converted below
    final_onnx = export_onnx(model, run.path("final.onnx" if as_is else "final-fp32.onnx"), img_size=chosen.img_size,
                             head="raw")
    if chosen.precision == "fp32" and not as_is:
        final_onnx = runtime.deployable(final_onnx, run.path("final" + runtime.suffix))
    original_onnx = export_onnx(run.original_model(), run.path("original.onnx"), img_size=c.img_size, head="raw")
    return ExportResult(str(final_pt), str(final_onnx), str(original_onnx), chosen.img_size)


def _int8(run: SlimRun) -> bool:
    chosen = run.chosen()
    return _builds(run) and chosen is not None and chosen.precision == "int8"


def quantize_stage(run: SlimRun) -> QuantizeResult:
    from ..cpu_runtimes import cpu_runtime

    runtime, images = cpu_runtime(run.config.runtime), run.candidate_models().calib_images
    report = runtime.quantize(run.result("export").final_onnx, run.path("final" + runtime.suffix), images)
    return QuantizeResult(str(report.path), report.float_nodes, report.calibration_batches)


def _models(run: SlimRun) -> dict[str, str]:
    quantized = run.result("quantize")
    exported = run.result("export")
    return {"original": exported.original_onnx, "final": quantized.final_onnx if quantized else exported.final_onnx}


def evaluate_stage(run: SlimRun) -> MapResult:
    from ..evaluation import evaluate_file, evaluation_set, headline_metrics

    c = run.config
    dataset = evaluation_set(c.data, c.train.val_split, class_names=run.original_model().names)
    sizes = {"original": c.img_size, "final": run.result("export").img_size}
    maps = {key: headline_metrics(evaluate_file(path, dataset, img_size=sizes[key], backend=c.runtime).result)
            for key, path in _models(run).items()}
    result = MapResult(c.train.val_split, len(dataset.ids), sizes, maps["original"], maps["final"])
    atomic_write_text(run.path("eval.json"), json.dumps(asdict(result), indent=2) + "\n")
    return result


def latency_stage(run: SlimRun) -> LatencyResult:
    from ..report.latency import measure_latency
    from ..report.machine import cpu_info

    c, models = run.config, _models(run)
    threads = {}
    for count, key in ((1, "1 thread"), (0, "all cores")):
        original, final = measure_latency([models["original"], models["final"]], threads=count, runs=c.latency_runs,
                                          runtime=c.runtime)
        threads[key] = {"original_ms": original.median_ms, "final_ms": final.median_ms,
                        "ratio": final.median_ms / original.median_ms}
    return LatencyResult(c.latency_runs, cpu_info(), threads, c.runtime)


def deploy_stage(run: SlimRun) -> DeployResult:
    from ..ascend.bundle import deploy
    from ..quant.amct import write_amct_config

    c, exported, quantized = run.config, run.result("export"), run.result("quantize")
    run.check_deploy()  # again: the folders may have changed since the start
    target = Path(c.deploy)
    ours = run.owns(target)
    if not ours and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise AscendSlimError(f"deploy folder {target} is not empty any more (written since the run started) and "
                              "this run did not create it, so it is not replaced: move its files away, then resume")
    out = deploy(exported.final_pt, target, img_size=exported.img_size, soc=c.soc, force=ours)
    run.claim_output(out)
    if quantized:
        write_amct_config(out / "model" / "amct.cfg", quantized.float_nodes, quantized.calibration_batches,
                          comment="AMCT calibration config of the INT8 choice (same float layers as final.onnx); "
                          "see the README section INT8 on Ascend")
    return DeployResult(str(out))


def report_stage(run: SlimRun) -> ReportResult:
    from .slim_report import write_report

    return ReportResult(**write_report(run))


SLIM_STAGES: tuple[Stage, ...] = (
    Stage("sparsity", sparsity_stage, TrainResult, enabled=lambda run: run.config.sparsity_epochs > 0),
    Stage("plan", plan_stage, PlanResult),
    Stage("prune", prune_stage, PruneResult, enabled=_cuts),
    Stage("reconstruct", reconstruct_stage, ReconstructResult, enabled=_cuts),
    Stage("finetune", finetune_stage, TrainResult, enabled=lambda run: _builds(run) and run.config.finetune_epochs > 0),
    Stage("export", export_stage, ExportResult, enabled=_builds),
    Stage("quantize", quantize_stage, QuantizeResult, enabled=_int8),
    Stage("evaluate", evaluate_stage, MapResult, enabled=_builds),
    Stage("latency", latency_stage, LatencyResult, enabled=_builds),
    Stage("deploy", deploy_stage, DeployResult, enabled=lambda run: _builds(run) and bool(run.config.deploy)),
    Stage("report", report_stage, ReportResult, enabled=_builds),
)
STAGES = tuple(s.name for s in SLIM_STAGES)


def slim(config: SlimConfig) -> SlimRun:
    """Run the slim recipe of ``config`` in a new run folder ``config.save_dir`` (see the module docstring);
    ``SlimRun.resume(folder).run()`` continues an interrupted one. Returns the run with every stage's record."""
    return SlimRun.create(config).run()


__all__ = ["SLIM_STAGES", "STAGES", "DeployResult", "ExportResult", "LatencyResult", "MapResult", "PlanResult",
           "PruneResult", "QuantizeResult", "ReconstructResult", "ReportResult", "SlimConfig", "SlimRun", "Stage",
           "StageRecord", "TrainResult", "slim"]
