"""The settings of a slim run (torch-free: ``ascend-slim slim`` takes its flag defaults from here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..errors import AscendSlimError
from ..train.config import TrainConfig
from ..train.hyp import load_hyp

# hyp.scratch-low, but the biases warm up from 0 like every other weight: the default 0.1 start disturbs a
# pretrained Detect head on a small data set
SLIM_HYP = {"warmup_bias_lr": 0.0}


def slim_training() -> TrainConfig:
    """The training settings of both training stages by default (each stage sets data, weights, epochs and
    folder): :data:`SLIM_HYP`, images cached in RAM, CPU, 2 loader processes, validation only at the end, and
    ``img_size`` 0: train at the slim run's ``img_size``."""
    return TrainConfig(hyp=load_hyp(SLIM_HYP), cache="ram", device="cpu", workers=2, noval=True, img_size=0)


@dataclass(frozen=True)
class SlimConfig:
    """Everything a slim run needs; saved in ``slim.json`` (a resumed run continues with these settings).

    Exactly one of ``percent`` / ``target_latency`` is set. ``train`` holds the settings of both training
    stages (batch size, training ``img_size`` (0: ``img_size``), optimiser, hyp, splits, device, ...; its
    ``data``, ``weights``, ``epochs`` and ``save_dir`` are set per stage); evaluation, export, latency and the
    latency target use ``img_size``. The defaults are the recipe's (``ascend-slim slim`` takes its defaults from here).
    """

    weights: str = ""
    data: str = ""
    classes: str = ""
    save_dir: str = "runs/slim/exp"
    percent: float | None = None
    target_latency: float | None = None
    round_to: int = 8
    min_keep: float = 0.0
    fold_bias: bool = True
    sparsity_epochs: int = 0
    sparsity_rate: float = 1e-3
    sparsity_decay: float = 0.9
    sparsity_beta: float = 0.0
    finetune_epochs: int = 15
    distill: bool = False
    distill_weight: float = 4.0
    distill_images: str = ""
    img_size: int = 640
    train: TrainConfig = field(default_factory=slim_training)
    deploy: str = ""
    soc: str = "Ascend310"
    latency_runs: int = 30

    def validated(self) -> SlimConfig:
        """This config with the training settings validated and resolved (hyp completed, default splits of
        ``data``); raises AscendSlimError for settings no run can use (before any work is done)."""
        if not self.weights or not self.data:
            raise AscendSlimError("slim needs weights (--weights) and data (--data), or a run to resume")
        if (self.percent is None) == (self.target_latency is None):
            raise AscendSlimError("give exactly one of percent (--percent) and target_latency (--target-latency)")
        if self.percent is not None and not 0.0 <= self.percent < 1.0:
            raise AscendSlimError(f"prune percent must lie in [0, 1), got {self.percent}")
        if self.target_latency is not None and not 0.0 < self.target_latency <= 1.0:
            raise AscendSlimError(f"target latency ratio must lie in (0, 1], got {self.target_latency}")
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
        train = replace(self.train, data=self.data, weights="", classes="",
                        img_size=self.train.img_size or self.img_size)
        return replace(self, train=train.validated())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SlimConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AscendSlimError(f"slim settings from another ascend-slim version (unknown {unknown})")
        return cls(**{**values, "train": TrainConfig(**values.get("train", {}))})
