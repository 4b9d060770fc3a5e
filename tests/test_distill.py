"""Distillation: zero loss when the student equals the teacher, gradients reach the student only, the teacher is
never updated, and unlabelled images add the distillation term and nothing else."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from train_helpers import small_config, voc_subset

from ascend_slim.classes import VOC_CLASSES
from ascend_slim.distill import Distiller, HeadDistillation, bernoulli_kl, load_teacher, unlabelled_samples
from ascend_slim.errors import AscendSlimError
from ascend_slim.train.builder import build_trainer
from ascend_slim.train.callbacks import TrainBatch


@pytest.fixture(scope="module")
def teacher(yolov5n_pt: Path):
    return load_teacher(yolov5n_pt, VOC_CLASSES)


@pytest.fixture(scope="module")
def images(images_dir: Path) -> torch.Tensor:
    """bus.jpg and zidane.jpg squashed to 160 x 160, RGB 0..1."""
    pics = [cv2.resize(cv2.imread(str(images_dir / n)), (160, 160))[:, :, ::-1] for n in ("bus.jpg", "zidane.jpg")]
    return torch.from_numpy(np.stack(pics).transpose(0, 3, 1, 2).copy()).float() / 255


@pytest.fixture(scope="module")
def tiny_voc(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_subset(tmp_path_factory.mktemp("voc4"), voc_root, 4)


def test_bernoulli_kl_is_zero_only_at_equality() -> None:
    t = torch.linspace(-12, 12, 49)
    assert bernoulli_kl(t, t).abs().max() < 1e-6
    assert (bernoulli_kl(t + 0.5, t) > 0).all() and (bernoulli_kl(t - 0.5, t) > 0).all()


def test_zero_when_student_equals_teacher_and_positive_otherwise(teacher, images: torch.Tensor) -> None:
    crit = HeadDistillation(teacher.detect.anchors, 160)
    with torch.no_grad():
        heads = teacher(images)
    loss, items = crit([h.clone() for h in heads], heads)
    assert float(loss) == 0.0 and all(float(v) == 0.0 for v in items.values())

    student = copy.deepcopy(teacher)
    with torch.no_grad():  # a perturbed student: every term becomes positive
        student.model[-1].m[0].weight.mul_(1.2)
        student.model[-1].m[2].bias.add_(0.3)
        loss, items = crit(student(images), heads)
    assert float(loss) > 0 and all(float(v) > 0 for v in items.values())


def test_gradient_reaches_the_student_only(tiny_voc: Path, yolov5n_pt: Path, teacher, tmp_path: Path) -> None:
    frozen = copy.deepcopy(teacher)
    distiller = Distiller(frozen, weight=2.0)
    trainer = build_trainer(small_config(tiny_voc, yolov5n_pt, tmp_path / "run", epochs=1, noval=True),
                            callbacks=[distiller])
    trainer.model.model[-1].m[1].bias.data.add_(0.5)  # make the student differ from the teacher
    trainer.fit()

    assert all(p.grad is None and not p.requires_grad for p in frozen.parameters())
    assert not frozen.training
    for (k, v), (_, t) in zip(frozen.state_dict().items(), teacher.state_dict().items()):
        assert torch.equal(v.cpu(), t), k  # weights and BN statistics untouched
    rows = trainer.results.rows
    assert rows[-1]["train/kd_obj"] > 0 and rows[-1]["train/kd_cls"] > 0

    # The distillation term alone (no detection loss) back-propagates into every head parameter of the student.
    student = trainer.model.eval()
    student.zero_grad(set_to_none=True)
    images, targets, paths, _ = next(iter(trainer.loader))
    x = images.float() / 255
    term, _ = distiller.extra_loss(trainer, TrainBatch(images=x, targets=targets, heads=student(x), paths=paths))
    term.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.detect.parameters())
    assert all(p.grad is None for p in frozen.parameters())


def test_unlabelled_images_add_only_the_distillation_term(tiny_voc: Path, yolov5n_pt: Path, teacher,
                                                          images_dir: Path, tmp_path: Path) -> None:
    config = small_config(tiny_voc, yolov5n_pt, tmp_path / "run", epochs=1, noval=True)
    plain, mixed = Distiller(copy.deepcopy(teacher)), Distiller(copy.deepcopy(teacher), images=images_dir)
    trainer = build_trainer(config, callbacks=[plain, mixed])
    for cb in (plain, mixed):
        cb.on_fit_start(trainer)
        cb.on_epoch_start(trainer, 0)
    assert len(mixed.unlabelled) == 2 and all(len(s.labels) == 0 for s in mixed.unlabelled.samples)
    student = trainer.model.eval()  # deterministic forwards for the comparison
    images, targets, paths, _ = next(iter(trainer.loader))
    x = images.float() / 255
    batch = TrainBatch(images=x, targets=targets, heads=student(x), paths=paths)

    unlabelled = next(iter(mixed._loader))[0].float() / 255
    labelled_term, _ = plain.extra_loss(trainer, batch)
    mixed_term, logged = mixed.extra_loss(trainer, batch)
    expected, _ = mixed.criterion(student(unlabelled), mixed.teacher(unlabelled))
    torch.testing.assert_close(mixed_term - labelled_term, expected, rtol=1e-4, atol=1e-6)
    assert logged["kd_unlabelled"] == pytest.approx(float(expected.detach()) / unlabelled.shape[0], rel=1e-4)


def test_bad_teacher_or_images(tmp_path: Path, yolov5n_pt: Path) -> None:
    with pytest.raises(AscendSlimError, match="not found"):
        load_teacher(tmp_path / "missing.pt", VOC_CLASSES)
    with pytest.raises(AscendSlimError, match="not found"):
        Distiller(tmp_path / "missing.pt")
    with pytest.raises(AscendSlimError, match="no images"):
        unlabelled_samples(tmp_path, VOC_CLASSES)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(AscendSlimError, match=r"broken\.jpg"):
        unlabelled_samples(tmp_path, VOC_CLASSES)
    with pytest.raises(AscendSlimError, match="weight"):
        Distiller(load_teacher(yolov5n_pt, VOC_CLASSES), weight=0.0)
