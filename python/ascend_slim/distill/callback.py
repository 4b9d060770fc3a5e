"""The distillation callback: a frozen teacher's raw heads as soft targets, through the trainer's extra-loss hook.

Every training batch also goes through the teacher (eval mode, no gradients, never updated); the term
:class:`~.loss.HeadDistillation` gives, on the detection loss's scale, times ``weight`` is added to the
YOLO loss. With unlabelled images (``images``, a folder), every labelled batch is followed by a batch of
those images, augmented like the training images (mosaic, affine, HSV, flips): they go through the student
and the teacher and add the distillation term only, so a small labelled set still learns from many images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import DetectionDataset
from ..data.loader import build_loader, set_epoch
from ..data.samples import Sample, SampleSet
from ..errors import AscendSlimError
from ..imageio import list_sources, read_image_size
from ..model.remap import load_for_classes
from ..model.yolo import YOLOv5
from ..train.callbacks import Callback, ExtraLoss, TrainBatch
from .loss import TERMS, HeadDistillation


def load_teacher(weights: str | Path, names: Sequence[str]) -> YOLOv5:
    """The teacher for a student predicting ``names``: ``weights`` (official or ascend-slim .pt), its classes
    remapped to ``names`` when they differ (a COCO teacher for a VOC student: exact head slicing)."""
    if not Path(weights).is_file():
        raise AscendSlimError(f"distillation teacher {weights} not found: pass a .pt checkpoint")
    return load_for_classes(weights, names)[0]


def unlabelled_samples(folder: str | Path, names: Sequence[str]) -> SampleSet:
    """The images of ``folder`` (sorted) as samples without objects; an image whose header cannot be read is
    one AscendSlimError naming it."""
    samples = []
    for path in list_sources(folder):
        if read_image_size(path) is None:
            raise AscendSlimError(f"unlabelled image {path} is not a readable image: remove it or fix it")
        samples.append(Sample(path, np.zeros((0, 5), dtype=np.float32)))
    return SampleSet(samples, tuple(names))


class Distiller(Callback):
    """Distillation from ``teacher`` (frozen) with ``weight``; ``images``: a folder of unlabelled images mixed
    in (see the module docstring). ``teacher`` is a model or a checkpoint path; a path is loaded when training
    starts, its classes remapped to the student's (:func:`load_teacher`), and recorded so that a resumed run
    can reload it."""

    name = "distill"

    def __init__(self, teacher: YOLOv5 | str | Path, weight: float = 1.0, images: str | Path | None = None) -> None:
        if not weight > 0:
            raise AscendSlimError(f"distillation weight must be positive, got {weight}")
        if not isinstance(teacher, YOLOv5) and not Path(teacher).is_file():
            raise AscendSlimError(f"distillation teacher {teacher} not found: pass a .pt checkpoint")
        self.teacher_path = "" if isinstance(teacher, YOLOv5) else str(teacher)
        self.teacher = teacher if isinstance(teacher, YOLOv5) else None
        self.weight = float(weight)
        self.images = str(images) if images else ""
        if self.images:
            list_sources(self.images)  # an empty or missing folder fails now, not when training starts
        self.unlabelled: SampleSet | None = None
        self.criterion: HeadDistillation | None = None
        self._loader = None
        self._batches = None

    def on_fit_start(self, trainer) -> None:
        student: YOLOv5 = trainer.model
        if self.teacher is None:
            self.teacher = load_teacher(self.teacher_path, student.names)
        self.teacher = self.teacher.float().eval().requires_grad_(False)
        if list(student.names) != list(self.teacher.names):
            raise AscendSlimError(f"the teacher predicts {len(self.teacher.names)} classes, the student "
                                  f"{student.nc}: distil between models of the same classes")
        same_anchors = torch.allclose(student.detect.anchors.float().cpu(), self.teacher.detect.anchors.float().cpu())
        if student.strides != self.teacher.strides or not same_anchors:
            raise AscendSlimError("the teacher's strides or anchors differ from the student's: distillation "
                                  "compares their heads cell by cell, so they must match")
        self.teacher.to(trainer.device, memory_format=torch.channels_last)
        self.criterion = HeadDistillation(student.detect.anchors, trainer.config.img_size, trainer.hyp)
        if self.images:
            self.unlabelled = unlabelled_samples(self.images, student.names)
            config = trainer.config
            dataset = DetectionDataset(self.unlabelled, config.img_size, augment=True, hyp=trainer.hyp,
                                       cache=config.cache, stride=int(max(student.strides)), seed=config.seed + 1)
            self._loader = build_loader(dataset, batch_size=config.batch_size // trainer.ctx.world_size,
                                        workers=config.workers, shuffle=True, seed=config.seed + 1,
                                        distributed=trainer.ctx.distributed)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        if self._loader is not None:
            set_epoch(self._loader, epoch)
            self._batches = iter(self._loader)

    def _unlabelled_batch(self) -> torch.Tensor:
        try:
            return next(self._batches)[0]
        except StopIteration:  # fewer unlabelled than labelled batches: go round again
            self._batches = iter(self._loader)
            return next(self._batches)[0]

    def _term(self, student_heads: list[torch.Tensor], images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            teacher_heads = self.teacher(images)
        return self.criterion(student_heads, teacher_heads)

    def extra_loss(self, trainer, batch: TrainBatch) -> ExtraLoss:
        term, items = self._term(batch.heads, batch.images)
        logged = {k: float(v) for k, v in items.items()}
        if self._loader is not None:
            images = self._unlabelled_batch().to(trainer.device, non_blocking=True).float().div_(255)
            images = images.contiguous(memory_format=torch.channels_last)
            unlabelled, unlabelled_items = self._term(trainer.forward(images), images)
            term = term + unlabelled
            logged["kd_unlabelled"] = sum(float(unlabelled_items[k]) for k in TERMS)
        return term * self.weight, logged

    def state_dict(self) -> dict:
        return {"weight": self.weight, "teacher": self.teacher_path, "images": self.images}

    @classmethod
    def from_state(cls, state: dict) -> Distiller:
        """The callback a checkpoint was trained with (the teacher reloaded from its recorded path)."""
        if not state["teacher"]:
            raise AscendSlimError("this run was distilled from an in-memory teacher: it cannot be resumed from the "
                                  "command line")
        return cls(state["teacher"], state["weight"], state["images"] or None)
