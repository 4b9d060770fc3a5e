"""A training run from paths and names: the model (``--weights`` / ``--cfg`` / ``--classes``), the data sets,
the run folder, and resuming a run from its ``last.pt``.

Model rules (as YOLOv5 ``train.py``): ``weights`` alone trains that model (``classes`` remaps a COCO model to
the named class set first, exactly); ``cfg`` alone builds a fresh model for the data's classes; both build
``cfg`` and take every weight of ``weights`` whose name and shape fit. A model whose classes differ from
the data's gets a fresh Detect head for the data's classes (everything else transferred).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..data.dataset import DetectionDataset
from ..data.samples import SampleSet, load_samples
from ..errors import AscendSlimError
from ..model.checkpoint import load_training_state, load_weights
from ..model.remap import load_for_classes
from ..model.yolo import YOLOv5
from .callbacks import Callback
from .trainer import TrainConfig, Trainer, seed_everything


def next_run_dir(project: str | Path, name: str = "exp", exist_ok: bool = False) -> Path:
    """``project/name``, or the first free ``project/name2``, ``name3``, ... (Ultralytics ``increment_path``);
    ``exist_ok`` reuses ``project/name``. Nothing is created."""
    path = Path(project) / name
    if exist_ok or not path.exists():
        return path
    n = 2
    while (candidate := Path(f"{path}{n}")).exists():
        n += 1
    return candidate


def latest_checkpoint(project: str | Path) -> Path:
    """The most recently written ``last.pt`` below ``project`` (what a bare ``--resume`` continues)."""
    found = sorted(Path(project).glob("**/last.pt"), key=os.path.getmtime)
    if not found:
        raise AscendSlimError(f"no last.pt below {project} to resume: pass --resume path/to/last.pt")
    return found[-1]


def transfer_weights(source: YOLOv5, target: YOLOv5) -> int:
    """Copy into ``target`` every tensor of ``source`` whose name and shape it shares; returns how many."""
    wanted = target.state_dict()
    shared = {k: v for k, v in source.state_dict().items() if k in wanted and v.shape == wanted[k].shape}
    target.load_state_dict(shared, strict=False)
    return len(shared)


def _require_model_source(weights: str, cfg: str) -> None:
    if not weights and not cfg:
        raise AscendSlimError("nothing to train: pass --weights (a .pt) or --cfg (a model yaml such as yolov5n)")


def load_model(names: Sequence[str], weights: str = "", cfg: str = "", classes: str = "") -> YOLOv5:
    """The model to train for data with class ``names`` (see the module docstring)."""
    names = list(names)
    _require_model_source(weights, cfg)
    if not weights:
        return YOLOv5.from_yaml(cfg, nc=len(names), names=names)
    model, _ = load_for_classes(weights, classes)
    if not cfg and model.names == names:
        return model
    if cfg:
        target = YOLOv5.from_yaml(cfg, nc=len(names), names=names)
    else:
        spec = model.spec
        spec.update(nc=len(names), names=names)
        target = YOLOv5.from_spec(spec)
    moved = transfer_weights(model, target)
    print(f"transferred {moved}/{len(target.state_dict())} tensors from {weights} "
          f"({model.nc} classes) to a {target.nc}-class model")
    target.history = [*model.history, {"action": "transfer", "from": str(weights), "tensors": moved,
                                       "names": names}]
    return target


def load_splits(config: TrainConfig) -> tuple[SampleSet, SampleSet]:
    """The training and validation images of a validated ``config`` (its splits are resolved)."""
    train = load_samples(config.data, config.train_split)
    if not any(len(sample.labels) for sample in train.samples):
        print(f"warning: no image of {config.data} split {config.train_split!r} has a labelled object: training "
              "only learns background (check the labels, or the class names)", file=sys.stderr)
    return train, load_samples(config.data, config.val_split, class_names=train.names)


def build_trainer(config: TrainConfig, callbacks: Sequence[Callback] = (), model: YOLOv5 | None = None) -> Trainer:
    """A Trainer for a new run described by ``config``: ``model``, or the model its paths describe."""
    config = config.validated()
    if model is None:
        _require_model_source(config.weights, config.cfg)  # before the data is read
        seed_everything(config.seed)  # a fresh --cfg model's initial weights depend on it
    splits = load_splits(config)
    if model is None:
        model = load_model(splits[0].names, weights=config.weights, cfg=config.cfg, classes=config.classes)
    return _trainer(config, model, splits, callbacks)


def _trainer(config: TrainConfig, model: YOLOv5, splits: tuple[SampleSet, SampleSet],
             callbacks: Sequence[Callback]) -> Trainer:
    train_set = DetectionDataset(splits[0], config.img_size, augment=True, hyp=config.hyp, cache=config.cache,
                                 stride=int(max(model.strides)), seed=config.seed)
    return Trainer(config, model, train_set, splits[1].eval_dataset(), callbacks)


def resume_trainer(checkpoint: str | Path, callbacks: Sequence[Callback] = (), epochs: int | None = None) -> Trainer:
    """A Trainer that continues the run of ``checkpoint`` (its ``last.pt``) after the last finished epoch.

    The run folder is the checkpoint's (``<run>/weights/last.pt``), wherever it has moved since; a checkpoint
    elsewhere is refused (the run folder recorded inside it may hold another run by now). ``epochs`` (None:
    the run's own) changes the schedule's length: more extends it, fewer ends it early; the learning-rate
    curve is recomputed for the new length from the resumed epoch on.
    """
    checkpoint = Path(checkpoint)
    state = load_training_state(checkpoint)
    if checkpoint.parent.name != "weights":
        raise AscendSlimError(f"cannot resume {checkpoint}: a resumable checkpoint is <run>/weights/last.pt and "
                              "the run continues in <run>; move it to such a folder (results.csv beside weights/)")
    finished = int(state["epoch"]) + 1
    if epochs is not None and epochs <= finished:
        raise AscendSlimError(f"--epochs {epochs}: {checkpoint} has finished {finished} epoch(s) already; "
                              f"give more than {finished} to train on")
    try:
        config = TrainConfig(**{**state["config"], "save_dir": str(checkpoint.parent.parent),
                                **({"epochs": epochs} if epochs is not None else {})})
    except TypeError as exc:
        raise AscendSlimError(f"{checkpoint}: training settings from another ascend-slim version ({exc})") from None
    config = config.validated()
    model, _ = load_weights(checkpoint)  # the architecture; restore() puts the raw weights back
    trainer = _trainer(config, model, load_splits(config), callbacks)
    trainer.restore(checkpoint)
    return trainer
