"""The settings of a training run (torch-free: command-line parsers and recipes build them without torch)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..data.samples import resolve_splits
from ..errors import AscendSlimError
from .hyp import DEFAULT_HYP, load_hyp

OPTIMIZERS = ("SGD", "Adam", "AdamW")


@dataclass
class TrainConfig:
    """Everything about a run except the model and data objects; saved in checkpoints for ``--resume``.

    ``data weights cfg classes train_split val_split cache`` say where the model and data came from
    (:func:`ascend_slim.train.builder.build_trainer` reads them; the Trainer only records them). ``batch_size``
    is the total over all ranks; ``device`` as ``--device`` (empty: the first GPU, else the CPU); ``amp``:
    float16 mixed precision on CUDA (see :func:`autocast_dtype`); ``noval`` validates only after
    the last epoch.
    """

    data: str = ""
    weights: str = ""
    cfg: str = ""
    classes: str = ""
    train_split: str = ""
    val_split: str = ""
    cache: str | None = None
    epochs: int = 100
    batch_size: int = 16
    img_size: int = 640
    optimizer: str = "SGD"
    hyp: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_HYP))
    cos_lr: bool = False
    device: str = ""
    workers: int = 8
    seed: int = 0
    sync_bn: bool = False
    noval: bool = False
    amp: bool = True
    save_dir: str = "runs/train/exp"

    def validated(self) -> TrainConfig:
        """This config with ``hyp`` completed (every hyp.scratch-low key, values in range) and the default splits
        of ``data`` filled in (see :func:`~ascend_slim.data.samples.resolve_splits`); raises AscendSlimError for a
        value no run can use. The builders call it once; the Trainer takes the result."""
        for name in ("epochs", "batch_size", "img_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AscendSlimError(f"{name} must be a positive integer, got {value!r}")
        if self.workers < 0:
            raise AscendSlimError(f"workers must be 0 or more, got {self.workers}")
        if self.optimizer not in OPTIMIZERS:
            raise AscendSlimError(f"unknown optimizer {self.optimizer!r}: choose {', '.join(OPTIMIZERS)}")
        splits = resolve_splits(self.data, self.train_split, self.val_split) if self.data else ("", "")
        return replace(self, hyp=load_hyp(self.hyp), train_split=splits[0], val_split=splits[1])
