"""The settings of a slim run (torch-free: ``ascend-slim slim`` takes its flag defaults from here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..compound import Objective, SearchSpace
from ..errors import AscendSlimError
from ..train.config import TrainConfig
from ..train.hyp import load_hyp

# hyp.scratch-low, but the biases warm up from 0 like every other weight: the default 0.1 start disturbs a
# pretrained Detect head on a small data set
SLIM_HYP = {"warmup_bias_lr": 0.0}
LATENCY_MODELS = ("measured", "flops")
IMPORTANCE_CRITERIA = ("output", "slim", "l1", "l2")
HELD_OUT_SPLITS = ("test",)  # never used to choose anything


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
    points, a floor met at ``confidence``), scored on the labelled ``select_split`` (default: the training
    split when nothing is trained, else ``val``; never ``test``). ``train`` holds the settings of the optional
    training stages (sparsity before the plan, finetuning after the cut, with BatchNorm statistics frozen when
    ``freeze_bn``); its ``val_split`` is where the result is evaluated once at the end. The defaults are the
    recipe's (``ascend-slim slim`` takes them).
    """

    weights: str = ""
    data: str = ""
    classes: str = ""
    save_dir: str = "runs/slim/exp"
    target_latency: float | None = 0.3
    max_drop: float | None = None
    confidence: float = 0.9
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
        if not self.weights or not self.data:
            raise AscendSlimError("slim needs weights (--weights) and data (--data), or a run to resume")
        if not self.objective.given and not self.plan_only:
            raise AscendSlimError("give --target-latency and/or --max-drop (what the plan optimises), or --plan-only")
        if self.target_latency is not None and not 0.0 < self.target_latency <= 1.0:
            raise AscendSlimError(f"target latency ratio must lie in (0, 1], got {self.target_latency}")
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
        return replace(self, train=train, select_split=select)

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
