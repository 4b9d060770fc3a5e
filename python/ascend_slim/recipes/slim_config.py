"""The settings of a slim run (torch-free: ``ascend-slim slim`` takes its flag defaults from here)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..compound import Objective, SearchSpace
from ..errors import AscendSlimError
from ..limits import IMAGE_SIZE
from ..train.config import TrainConfig
from ..train.hyp import load_hyp

# hyp.scratch-low, but the biases warm up from 0 like every other weight: the default 0.1 start disturbs a
# pretrained Detect head on a small data set
SLIM_HYP = {"warmup_bias_lr": 0.0}
LATENCY_MODELS = ("measured", "flops")
IMPORTANCE_CRITERIA = ("output", "taylor", "slim", "l1", "l2")
HELD_OUT_SPLITS = ("test",)  # never used to choose anything
INPUT_PATHS = ("weights", "data", "distill_images", "deploy")  # kept absolute: a run folder can move
# what check_types accepts (the CLI's flag types give the same ranges)
INT_SETTINGS = {"recon_images": (0, 100_000), "recon_samples": (1, 1_000_000), "calib_images": (0, 100_000),
                "round_to": (1, 256), "latency_runs": (1, 10_000), "folds": (2, 10), "fold_seed": (0, 2**31 - 1),
                "sparsity_epochs": (0, 100_000),
                "finetune_epochs": (0, 100_000), "img_size": IMAGE_SIZE}
FLOAT_SETTINGS = {"target_latency": (0.0, 1.0, True), "max_drop": (0.0, 100.0, True), "confidence": (0.0, 1.0, False),
                  "sparsity_rate": (0.0, 1e3, False), "sparsity_decay": (0.0, 1.0, False),
                  "sparsity_beta": (-1e3, 1e3, False), "distill_weight": (0.0, 1e6, False)}
BOOL_SETTINGS = ("int8", "plan_only", "distill", "freeze_bn")
STR_SETTINGS = ("weights", "data", "classes", "save_dir", "latency_model", "runtime", "select_split", "importance",
                "distill_images", "deploy", "soc")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """A finite int or float (not a bool, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def slim_training() -> TrainConfig:
    """The training settings of both (optional) training stages by default (each stage sets data, weights, epochs
    and folder): :data:`SLIM_HYP`, images cached in RAM, CPU, 2 loader processes, validation only at the end, and
    ``img_size`` 0: train at the size the plan chose."""
    return TrainConfig(hyp=load_hyp(SLIM_HYP), cache="ram", device="cpu", workers=2, noval=True, img_size=0)


@dataclass(frozen=True)
class SlimConfig:
    """Everything a slim run needs; saved in ``slim.json`` (a resumed run continues with these settings).

    The plan (:mod:`ascend_slim.compound`) searches input sizes ``img_sizes`` (empty: every multiple of 32 in
    256-640) × channel cuts ``cuts`` (uniform fractions, recovered by reconstruction on ``recon_images``
    unlabelled training images) × precision (FP32, and INT8 with ``int8``, calibrated on ``calib_images``) for
    ``target_latency`` (latency ratio to the original at its own ``img_size``) and/or ``max_drop`` (mAP@0.5
    points, a floor met at ``confidence``: by default the fastest candidate within 1 point, its estimate), scored
    on the labelled ``select_split`` with ``folds``-fold cross-fitting (split by ``fold_seed``) (default: the training
    split when nothing is trained, else ``val``; never ``test``). ``train`` holds the settings of the optional
    training stages (sparsity before the plan, finetuning after the cut, with BatchNorm statistics frozen when
    ``freeze_bn``); its ``val_split`` is where the result is evaluated once at the end. The defaults are the
    recipe's (``ascend-slim slim`` takes them).
    """

    weights: str = ""
    data: str = ""
    classes: str = ""
    save_dir: str = "runs/slim/exp"
    target_latency: float | None = None
    max_drop: float | None = 1.0
    confidence: float = 0.5
    folds: int = 2
    fold_seed: int = 0
    img_sizes: tuple[int, ...] = ()
    cuts: tuple[float, ...] = (0.05, 0.1)
    int8: bool = True
    latency_model: str = "measured"
    select_split: str = ""
    recon_images: int = 128
    recon_samples: int = 1024
    calib_images: int = 100
    importance: str = "output"
    round_to: int = 16
    plan_only: bool = False
    sparsity_epochs: int = 0
    sparsity_rate: float = 1e-3
    sparsity_decay: float = 0.9
    sparsity_beta: float = 0.0
    finetune_epochs: int = 0
    distill: bool = False
    distill_weight: float = 4.0
    distill_images: str = ""
    freeze_bn: bool = False
    img_size: int = 640
    train: TrainConfig = field(default_factory=slim_training)
    deploy: str = ""
    soc: str = "Ascend310"
    latency_runs: int = 30
    runtime: str = "onnxruntime"  # the CPU runtime the plan times and quantizes for (runtime.factory.RUNTIMES)

    @property
    def trains(self) -> bool:
        return self.sparsity_epochs > 0 or self.finetune_epochs > 0

    @property
    def objective(self) -> Objective:
        return Objective(self.target_latency, self.max_drop, self.confidence)

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_options(self.img_sizes or None, self.cuts, self.int8, default_size=self.img_size)

    def validated(self) -> SlimConfig:
        """This config with the training settings validated and the splits resolved; raises AscendSlimError for
        settings no run can use (before any work is done)."""
        self.check_types()
        if not self.weights or not self.data:
            raise AscendSlimError("slim needs weights (--weights) and data (--data), or a run to resume")
        if not self.objective.given and not self.plan_only:
            raise AscendSlimError("--max-drop none without a --target-latency leaves the plan nothing to optimise: "
                                  "give one of them, or --plan-only")
        if self.target_latency is not None and not 0.0 < self.target_latency <= 1.0:
            raise AscendSlimError(f"target latency ratio must lie in (0, 1], got {self.target_latency}")
        if not 2 <= self.folds <= 10:
            raise AscendSlimError(f"--folds {self.folds}: cross-fitting needs 2 to 10 folds")
        self.space  # noqa: B018 (validates sizes, cuts and precisions)
        from ..cpu_runtimes import cpu_runtime

        cpu_runtime(self.runtime)  # known and installed
        if self.latency_model not in LATENCY_MODELS:
            raise AscendSlimError(f"latency model {self.latency_model!r}: choose {' or '.join(LATENCY_MODELS)}")
        if self.importance not in IMPORTANCE_CRITERIA:
            raise AscendSlimError(f"importance {self.importance!r}: choose one of {', '.join(IMPORTANCE_CRITERIA)}")
        if (self.cuts and self.recon_images < 1) or (self.int8 and self.calib_images < 1) or self.recon_samples < 1:
            raise AscendSlimError("channel cuts need --recon-images >= 1 (and --recon-samples >= 1), INT8 needs "
                                  "--calib-images >= 1")
        if self.sparsity_epochs < 0 or self.finetune_epochs < 0:
            raise AscendSlimError(f"epochs must be >= 0, got sparsity {self.sparsity_epochs} and finetune "
                                  f"{self.finetune_epochs}")
        if not Path(self.weights).is_file():
            raise AscendSlimError(f"weights {self.weights} not found")
        deploy = Path(self.deploy) if self.deploy else None
        if deploy is not None and deploy.exists() and (not deploy.is_dir() or any(deploy.iterdir())):
            raise AscendSlimError(f"deploy folder {deploy} exists and is not empty: choose another or remove it")
        if self.distill_images and not self.distill:
            raise AscendSlimError("distillation images need distill on: they only feed the distillation term")
        train = replace(replace(self.train, data=self.data, weights="", classes="",
                                img_size=self.train.img_size or self.img_size).validated(),
                        img_size=self.train.img_size)  # 0 stays: train at the size the plan chose
        select = self.select_split or ("val" if self.trains else train.train_split)
        if select in HELD_OUT_SPLITS:
            raise AscendSlimError(f"--select-split {select}: the {select} split is held out for the final figures "
                                  "and never chooses anything; select on trainval, train or val")
        overlaps = select == train.train_split or (train.train_split == "trainval" and select in ("train", "val"))
        if self.trains and overlaps:
            raise AscendSlimError(f"the selection split {select} overlaps the training split {train.train_split}: "
                                  "train on train and select on val (--train-split train --select-split val)")
        inputs = {k: os.path.abspath(getattr(self, k)) for k in INPUT_PATHS if getattr(self, k)}
        return replace(self, train=train, select_split=select, **inputs)

    def check_types(self) -> None:
        """Raise AscendSlimError naming the first setting whose type or range no run can use (as the CLI's flag
        types would): ``cuts=0.1`` (not a list), ``img_sizes=320``, ``confidence="0.9"``, ``latency_runs=0``."""
        for name, (low, high) in INT_SETTINGS.items():
            value = getattr(self, name)
            if not _is_int(value) or not low <= value <= high:
                raise AscendSlimError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
        for name in BOOL_SETTINGS:
            if not isinstance(getattr(self, name), bool):
                raise AscendSlimError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in STR_SETTINGS:
            if not isinstance(getattr(self, name), str):
                raise AscendSlimError(f"{name} must be a string (a path or a name), got {getattr(self, name)!r}")
        for name, (low, high, optional) in FLOAT_SETTINGS.items():
            value = getattr(self, name)
            if value is None and optional:
                continue
            if not _is_number(value) or not low <= value <= high:
                none = " or None" if optional else ""
                raise AscendSlimError(f"{name} must be a number in [{low:g}, {high:g}]{none}, got {value!r}")
        if not 0.0 < self.confidence < 1.0:
            raise AscendSlimError(f"confidence must lie strictly between 0 and 1, got {self.confidence!r}")
        if not isinstance(self.img_sizes, (tuple, list)) or not all(
                _is_int(v) and IMAGE_SIZE[0] <= v <= IMAGE_SIZE[1] for v in self.img_sizes):
            raise AscendSlimError(f"img_sizes must be a list of input sizes in [{IMAGE_SIZE[0]}, {IMAGE_SIZE[1]}] "
                                  f"(empty: every multiple of 32 in 256-640), got {self.img_sizes!r}")
        if not isinstance(self.cuts, (tuple, list)) or not all(_is_number(v) and 0 <= v < 1 for v in self.cuts):
            raise AscendSlimError(f"cuts must be a list of channel fractions in [0, 1) (empty: no cuts), got "
                                  f"{self.cuts!r}")
        if not isinstance(self.train, TrainConfig):
            raise AscendSlimError(f"train must be a TrainConfig, got {type(self.train).__name__}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SlimConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AscendSlimError(f"slim settings from another ascend-slim version (unknown {unknown})")
        tuples = {k: tuple(values[k]) for k in ("img_sizes", "cuts") if k in values}
        return cls(**{**values, **tuples, "train": TrainConfig(**values.get("train", {}))})
