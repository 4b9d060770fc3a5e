"""Recovery beyond one layer at a time: a short distillation of a compressed model on unlabelled images.

After channel or depth cuts and least-squares reconstruction (:mod:`ascend_slim.prune.reconstruct`), every
weight of the student is trained for a few epochs so that its raw heads match the original's (the teacher) on the
same images, with :class:`~.loss.HeadDistillation` (zero where student = teacher) as the only loss: no labels.
BatchNorm statistics stay frozen (the whole student runs in eval mode, γ and β still learn), so a few hundred
images cannot shift statistics estimated on the original data. Images are letterboxed to ``img_size`` as
``eval`` feeds them; half of each batch is flipped left-right (the teacher sees the same flipped images).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from ..data.unlabelled import ImageSource, letterboxed_batches
from ..errors import AscendSlimError
from ..model.yolo import YOLOv5
from .loss import HeadDistillation


@dataclass
class DistillationReport:
    """What :func:`distill_recover` did: mean loss per epoch, settings, wall and CPU seconds."""

    losses: list[float]
    images: int
    img_size: int
    lr: float
    batch_size: int
    seconds: float
    cpu_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def distill_recover(student: YOLOv5, teacher: YOLOv5, images: Sequence[ImageSource], epochs: int = 1,
                    img_size: int = 640, batch_size: int = 8, lr: float = 3e-5, seed: int = 0,
                    progress: bool = True) -> DistillationReport:
    """Train ``student`` (in place) toward ``teacher``'s heads on unlabelled ``images`` (paths or BGR arrays) for
    ``epochs`` with Adam at ``lr``, BatchNorm statistics frozen; see the module docstring. Keep ``lr`` small: on
    yolov5n at 10 % cut, 3e-5 recovered val mAP steadily while 3e-4 wrecked a reconstructed model
    (``benchmarks/recon-notes.md``)."""
    if not images:
        raise AscendSlimError("distillation recovery needs at least one image")
    if epochs < 1 or not lr > 0 or batch_size < 1:
        raise AscendSlimError(f"distillation recovery needs epochs >= 1, lr > 0 and batch size >= 1, got {epochs}, "
                              f"{lr} and {batch_size}")
    if list(student.names) != list(teacher.names) or student.strides != teacher.strides:
        raise AscendSlimError("the student and the teacher must predict the same classes at the same strides")
    start, cpu_start = time.perf_counter(), time.process_time()
    modes = (student.training, teacher.training)
    flags = {p: p.requires_grad for p in student.parameters()}
    criterion = HeadDistillation(student.detect.anchors, img_size)
    generator = torch.Generator().manual_seed(seed)
    images = list(images)
    losses = []
    try:
        student.eval().requires_grad_(True)
        teacher.eval()
        optimizer = torch.optim.Adam(student.parameters(), lr=lr)
        with tqdm(total=epochs * len(images), desc="distill", unit="img", disable=not progress) as bar:
            for _ in range(epochs):
                order = torch.randperm(len(images), generator=generator).tolist()
                total = 0.0
                for batch in letterboxed_batches([images[i] for i in order], img_size, batch_size):
                    flip = torch.rand(len(batch), generator=generator) < 0.5
                    batch[flip] = batch[flip].flip(-1)
                    with torch.no_grad():
                        target = teacher(batch)
                    loss, _ = criterion(student(batch), target)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach())
                    bar.update(len(batch))
                    bar.set_postfix(loss=f"{float(loss.detach()) / len(batch):.4g}")
                losses.append(total / len(images))
    finally:
        student.zero_grad(set_to_none=True)
        for p, flag in flags.items():
            p.requires_grad_(flag)
        student.train(modes[0]), teacher.train(modes[1])
    return DistillationReport(losses, len(images), img_size, lr, batch_size, time.perf_counter() - start,
                              time.process_time() - cpu_start)
