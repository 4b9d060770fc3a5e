"""Network slimming end to end, one resumable run folder: from official weights to a smaller, faster model.

Stages, in order (each writes its result into the run folder and is recorded in ``slim.json`` when done, so
a rerun with ``resume`` skips finished stages and continues an interrupted training from its ``last.pt``):

1. ``sparsity`` — train with :class:`~ascend_slim.prune.sparsity.SparsityRegularizer` (L1 on every prunable
   BN γ) for ``sparsity_epochs`` (0 skips it): ``sparsity/weights/last.pt``, γ histograms under
   ``sparsity/sparsity/``.
2. ``prune`` — :func:`~ascend_slim.prune.prune_channels` by ``percent`` or ``target_latency`` (measured
   onnxruntime ratio at ``img_size``), kept widths rounded up to ``round_to``: ``pruned.pt``, ``prune.json``.
3. ``finetune`` — train the pruned model for ``finetune_epochs`` (no sparsity), distilled from the unpruned
   original when ``distill``: ``finetune/weights/last.pt``.
4. ``export`` — ``final.pt`` (the finetuned last-epoch weights) and ``final.onnx`` (static ``img_size``,
   raw heads), plus ``original.onnx`` for the comparisons.
5. ``evaluate`` — mAP of ``original.onnx`` and ``final.onnx`` on the validation split at ``img_size`` (YOLOv5
   ``val.py`` settings): ``eval.json``.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..classes import resolve_class_set
from ..errors import AscendSlimError
from ..fileio import atomic_write_text
from ..model.checkpoint import load_training_state, load_weights, save_checkpoint
from ..model.remap import remap_classes
from ..model.yolo import YOLOv5
from ..train.callbacks import Callback
from ..train.hyp import load_hyp
from ..train.trainer import VAL_SETTINGS

STAGES = ("sparsity", "prune", "finetune", "export", "evaluate", "latency", "deploy", "report")
# hyp.scratch-low, but the biases warm up from 0 like every other weight: the default 0.1 start disturbs a
# pretrained Detect head on a small data set
SLIM_HYP = {"warmup_bias_lr": 0.0}


@dataclass
class SlimConfig:
    """Everything a slim run needs; saved in ``slim.json`` (a resumed run continues with these settings).

    Exactly one of ``percent`` / ``target_latency`` is set. ``train_img_size`` (0: ``img_size``) is the
    training resolution; evaluation, export, latency and the latency target use ``img_size``.
    ``sparsity_hyp`` / ``finetune_hyp`` override hyp.scratch-low keys for each training stage (default
    :data:`SLIM_HYP`).
    """

    weights: str
    data: str
    save_dir: str
    classes: str = ""
    train_split: str = ""
    val_split: str = ""
    percent: float | None = None
    target_latency: float | None = None
    round_to: int = 16
    min_keep: float = 0.0
    fold_bias: bool = True
    sparsity_epochs: int = 0
    sparsity_rate: float = 1e-3
    sparsity_decay: float = 0.9
    sparsity_beta: float = 0.0
    finetune_epochs: int = 10
    distill: bool = False
    distill_weight: float = 1.0
    distill_images: str = ""
    img_size: int = 640
    train_img_size: int = 0
    batch_size: int = 16
    optimizer: str = "SGD"
    sparsity_hyp: dict[str, float] = field(default_factory=lambda: dict(SLIM_HYP))
    finetune_hyp: dict[str, float] = field(default_factory=lambda: dict(SLIM_HYP))
    cos_lr: bool = False
    device: str = "cpu"
    workers: int = 2
    cache: str | None = "ram"
    seed: int = 0
    deploy: str = ""
    soc: str = "Ascend310"
    latency_runs: int = 30

    def check(self) -> None:
        """Raise AscendSlimError for settings no run can use (before any work is done)."""
        if (self.percent is None) == (self.target_latency is None):
            raise AscendSlimError("give exactly one of percent and target_latency")
        if self.percent is not None and not 0.0 <= self.percent < 1.0:
            raise AscendSlimError(f"prune percent must lie in [0, 1), got {self.percent}")
        if self.target_latency is not None and not 0.0 < self.target_latency <= 1.0:
            raise AscendSlimError(f"target latency ratio must lie in (0, 1], got {self.target_latency}")
        if self.sparsity_epochs < 0 or self.finetune_epochs < 1:
            raise AscendSlimError(f"sparsity epochs must be >= 0 and finetune epochs >= 1, got "
                                  f"{self.sparsity_epochs} and {self.finetune_epochs}")
        if not Path(self.weights).is_file():
            raise AscendSlimError(f"weights {self.weights} not found")
        deploy = Path(self.deploy) if self.deploy else None
        if deploy is not None and deploy.exists() and (not deploy.is_dir() or any(deploy.iterdir())):
            raise AscendSlimError(f"deploy folder {deploy} exists and is not empty: choose another or remove it")
        if self.distill_images and not self.distill:
            raise AscendSlimError("distill_images needs distill on (the unlabelled images only feed distillation)")
        load_hyp(self.sparsity_hyp)
        load_hyp(self.finetune_hyp)

    @property
    def train_size(self) -> int:
        return self.train_img_size or self.img_size

    @classmethod
    def from_dict(cls, values: dict) -> SlimConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AscendSlimError(f"slim settings from another ascend-slim version (unknown {unknown})")
        return cls(**values)


@dataclass
class StageRecord:
    """What a finished stage produced and what it cost (wall-clock and CPU seconds of this process tree)."""

    seconds: float
    cpu_seconds: float
    result: dict


class SlimRun:
    """A run folder and its ``slim.json`` (the settings and the finished stages)."""

    def __init__(self, config: SlimConfig) -> None:
        self.config = config
        self.dir = Path(config.save_dir)
        self.stages: dict[str, StageRecord] = {}

    @property
    def state_path(self) -> Path:
        return self.dir / "slim.json"

    @classmethod
    def open(cls, folder: str | Path) -> SlimRun:
        """The run in ``folder`` as ``slim.json`` recorded it (to resume it)."""
        path = Path(folder) / "slim.json"
        if not path.is_file():
            raise AscendSlimError(f"no slim run to resume in {folder} (slim.json missing)")
        try:
            state = json.loads(path.read_text())
            config = SlimConfig.from_dict({**state["config"], "save_dir": str(folder)})
            stages = {k: StageRecord(**v) for k, v in state["stages"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise AscendSlimError(f"{path} is malformed ({type(exc).__name__}: {exc})") from None
        run = cls(config)
        run.stages = stages
        return run

    def save(self) -> None:
        state = {"config": asdict(self.config), "stages": {k: asdict(v) for k, v in self.stages.items()}}
        atomic_write_text(self.state_path, json.dumps(state, indent=2) + "\n")

    def path(self, name: str) -> Path:
        return self.dir / name

    def run_stage(self, name: str, work: Callable[[], dict]) -> dict:
        """``work()`` unless ``name`` already finished; its result is recorded with its cost."""
        if name in self.stages:
            print(f"slim: stage {name} already done, skipped")
            return self.stages[name].result
        print(f"slim: stage {name}")
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        result = work()
        self.stages[name] = StageRecord(round(time.perf_counter() - start, 2), round(_cpu_seconds() - cpu_start, 2),
                                        result)
        self.save()
        return result


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (loader workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def original_model(config: SlimConfig) -> YOLOv5:
    """The unpruned starting model (``weights`` remapped to ``classes``)."""
    model, _ = load_weights(config.weights)
    if config.classes:
        model = remap_classes(model, resolve_class_set(config.classes))
    return model


def training_callbacks(sparsity: float = 0.0, sparsity_decay: float = 0.9, sparsity_beta: float = 0.0,
                       distill: str | Path | None = None, distill_weight: float = 1.0,
                       distill_images: str | Path | None = None) -> list[Callback]:
    """The callbacks of a training run: sparsity (L1 rate ``sparsity`` > 0) and distillation from the checkpoint
    ``distill``; none when both are off."""
    from ..distill import Distiller
    from ..prune.sparsity import SparsityRegularizer

    if distill_images and not distill:
        raise AscendSlimError("distillation images need a teacher: they only feed the distillation term")
    callbacks: list[Callback] = []
    if sparsity:
        callbacks.append(SparsityRegularizer(sparsity, sparsity_decay, sparsity_beta))
    if distill:
        callbacks.append(Distiller(distill, distill_weight, distill_images or None))
    return callbacks


def resumed_callbacks(states: dict[str, dict]) -> list[Callback]:
    """The callbacks a checkpoint's run used, rebuilt from their saved states (``training["callbacks"]``)."""
    from ..distill import Distiller
    from ..prune.sparsity import SparsityRegularizer

    known = {"sparsity": SparsityRegularizer.from_state, "distill": Distiller.from_state}
    unknown = sorted(set(states) - set(known))
    if unknown:
        raise AscendSlimError(f"the run used callbacks {unknown} that the command line cannot rebuild")
    return [known[name](state) for name, state in states.items()]


def _callbacks(config: SlimConfig, stage: str) -> list[Callback]:
    return training_callbacks(sparsity=config.sparsity_rate if stage == "sparsity" else 0.0,
                              sparsity_decay=config.sparsity_decay, sparsity_beta=config.sparsity_beta,
                              distill=config.weights if config.distill else None, distill_weight=config.distill_weight,
                              distill_images=config.distill_images)


def _finished(last: Path) -> bool | None:
    """None: no checkpoint yet; False: an interrupted run (training state inside); True: a finished run."""
    if not last.is_file():
        return None
    try:
        load_training_state(last)
    except AscendSlimError:  # the state is stripped when a run finishes
        return True
    return False


def _train(config: SlimConfig, run: SlimRun, stage: str, source: str, start: YOLOv5, epochs: int) -> dict:
    """Train ``start`` (loaded from ``source``) for ``epochs`` in ``<run>/<stage>``, continuing an interrupted
    ``last.pt`` there; returns the checkpoint path and the last results row."""
    from ..data.dataset import DetectionDataset
    from ..train.builder import load_splits
    from ..train.trainer import TrainConfig, Trainer

    folder = run.path(stage)
    last = folder / "weights" / "last.pt"
    finished = _finished(last)
    if finished:
        return {"checkpoint": str(last), "epochs": epochs, "last_row": {}}
    hyp = load_hyp(config.sparsity_hyp if stage == "sparsity" else config.finetune_hyp)
    train_config = TrainConfig(data=config.data, weights=source, train_split=config.train_split,
                               val_split=config.val_split, cache=config.cache, epochs=epochs,
                               batch_size=config.batch_size, img_size=config.train_size, optimizer=config.optimizer,
                               hyp=hyp, cos_lr=config.cos_lr, device=config.device, workers=config.workers,
                               seed=config.seed, noval=True, save_dir=str(folder))
    train_config.check()
    splits = load_splits(train_config)
    train_set = DetectionDataset(splits[0], train_config.img_size, augment=True, hyp=train_config.hyp,
                                 cache=train_config.cache, stride=int(max(start.strides)), seed=train_config.seed)
    trainer = Trainer(train_config, start, train_set, splits[1].eval_dataset(),
                      _callbacks(config, stage))
    if finished is False:
        print(f"slim: resuming {stage} from {last}")
        trainer.restore(last)
    return {"checkpoint": str(last), "epochs": epochs, "last_row": trainer.fit()}


def _sparsity_stage(config: SlimConfig, run: SlimRun) -> dict:
    from ..prune.sparsity import gamma_stats

    original = original_model(config)
    before = gamma_stats(original)
    if config.sparsity_epochs == 0:
        return {"skipped": True, "checkpoint": None, "gamma_before": before, "gamma_after": before}
    result = _train(config, run, "sparsity", config.weights, original, config.sparsity_epochs)
    trained, _ = load_weights(result["checkpoint"])
    return {**result, "gamma_before": before, "gamma_after": gamma_stats(trained)}


def _prune_stage(config: SlimConfig, run: SlimRun, sparse_checkpoint: str | None) -> dict:
    from ..prune import prune_channels

    model = load_weights(sparse_checkpoint)[0] if sparse_checkpoint else original_model(config)
    result = prune_channels(model.eval(), method="slim", percent=config.percent,
                            target_latency=config.target_latency, round_to=config.round_to,
                            min_keep=config.min_keep, img_size=config.img_size, fold_bias=config.fold_bias,
                            force=True, latency_runs=config.latency_runs)
    path = save_checkpoint(run.path("pruned.pt"), result.model, img_size=config.img_size)
    record = {**result.record, "layers": result.table}
    atomic_write_text(run.path("prune.json"), json.dumps(record, indent=2) + "\n")
    summary = {k: v for k, v in result.record.items() if k != "kept"}
    return {"checkpoint": str(path), **summary, "layers": result.table}


def _export_stage(config: SlimConfig, run: SlimRun, finetuned: str) -> dict:
    from ..export import export_onnx

    model, info = load_weights(finetuned)
    final_pt = save_checkpoint(run.path("final.pt"), model, img_size=config.img_size, history=info["history"])
    final_onnx = export_onnx(model, run.path("final.onnx"), img_size=config.img_size, head="raw")
    original_onnx = export_onnx(original_model(config), run.path("original.onnx"), img_size=config.img_size,
                                head="raw")
    return {"final_pt": str(final_pt), "final_onnx": str(final_onnx), "original_onnx": str(original_onnx)}


def _evaluate_stage(config: SlimConfig, run: SlimRun, models: dict[str, str]) -> dict:
    from ..data.samples import load_samples
    from ..detector import Detector
    from ..evaluation import evaluate
    from ..train.builder import DEFAULT_SPLITS

    kind = "voc" if Path(config.data).is_dir() else "yaml"
    split = config.val_split or DEFAULT_SPLITS[kind][1]
    names = list(original_model(config).names)
    dataset = load_samples(config.data, split, class_names=names).eval_dataset()
    maps = {}
    for key, path in models.items():
        with Detector(path, img_size=config.img_size, num_threads=1, **VAL_SETTINGS) as detector:
            means = evaluate(detector, dataset, progress=True).means
        maps[key] = {k: float(means[k]) for k in ("ap50_voc07", "ap50", "ap50_95")}
    result = {"split": split, "images": len(dataset.ids), "img_size": config.img_size, **maps}
    atomic_write_text(run.path("eval.json"), json.dumps(result, indent=2) + "\n")
    return result


def _latency_stage(config: SlimConfig, models: dict[str, str]) -> dict:
    from ..report.latency import measure_latency
    from ..report.machine import cpu_info

    result: dict = {"runs": config.latency_runs, "machine": cpu_info()}
    for threads, key in ((1, "1 thread"), (0, "all cores")):
        original, final = measure_latency([models["original"], models["final"]], threads=threads,
                                          runs=config.latency_runs, img_size=config.img_size)
        result[key] = {"original_ms": original.median_ms, "final_ms": final.median_ms,
                       "ratio": final.median_ms / original.median_ms}
    return result


def _deploy_stage(config: SlimConfig, final_pt: str) -> dict:
    from ..ascend.bundle import deploy

    out = deploy(final_pt, config.deploy, img_size=config.img_size, soc=config.soc, force=True)
    return {"bundle": str(out)}


def slim(config: SlimConfig, resume: bool = False) -> SlimRun:
    """Run (or, with ``resume``, continue) the slim recipe of ``config`` in ``config.save_dir``; see the module
    docstring. Returns the run with every stage's record."""
    from .slim_report import write_report

    if resume:
        run = SlimRun.open(config.save_dir)
        config = run.config
    else:
        config.check()
        folder = Path(config.save_dir)
        if (folder / "slim.json").exists():
            raise AscendSlimError(f"{folder} already holds a slim run: resume it or choose another name")
        run = SlimRun(config)
        folder.mkdir(parents=True, exist_ok=True)
        run.save()
    sparsity = run.run_stage("sparsity", lambda: _sparsity_stage(config, run))
    pruned = run.run_stage("prune", lambda: _prune_stage(config, run, sparsity["checkpoint"]))
    finetune = run.run_stage("finetune", lambda: _train(config, run, "finetune", pruned["checkpoint"],
                                                        load_weights(pruned["checkpoint"])[0], config.finetune_epochs))
    exported = run.run_stage("export", lambda: _export_stage(config, run, finetune["checkpoint"]))
    models = {"original": exported["original_onnx"], "final": exported["final_onnx"]}
    run.run_stage("evaluate", lambda: _evaluate_stage(config, run, models))
    run.run_stage("latency", lambda: _latency_stage(config, models))
    if config.deploy:
        run.run_stage("deploy", lambda: _deploy_stage(config, exported["final_pt"]))
    run.run_stage("report", lambda: write_report(run.dir, asdict(config), {k: asdict(v) for k, v in run.stages.items()},
                                                  original_model(config)))
    return run
