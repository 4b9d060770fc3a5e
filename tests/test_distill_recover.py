"""Distillation recovery on unlabelled photos: the pruned official model moves toward the original on held-out
photos, BatchNorm statistics and the teacher stay as they were, bad settings are one clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_prune_reconstruct import voc_split

from ascend_slim import core
from ascend_slim.distill.loss import HeadDistillation
from ascend_slim.distill.recover import distill_recover
from ascend_slim.errors import AscendSlimError
from ascend_slim.imageio import read_image
from ascend_slim.model.checkpoint import load_weights
from ascend_slim.prune import build_graph, get_importance, prune_model
from ascend_slim.prune.uniform import plan_uniform

IMG = 128


def test_distillation_recovers_on_held_out_photos(yolov5n_pt: Path, voc_root: Path) -> None:
    teacher, _ = load_weights(yolov5n_pt)
    teacher.eval()
    graph = build_graph(teacher)
    student = prune_model(teacher, graph, plan_uniform(graph, get_importance("slim")(teacher, graph), 0.2).keep)
    tensor, _, _ = core.preprocess([read_image(p) for p in voc_split(voc_root, "val", 4)], (IMG, IMG))
    held_out = torch.from_numpy(np.ascontiguousarray(tensor))
    criterion = HeadDistillation(teacher.detect.anchors, IMG)

    def gap() -> float:
        with torch.no_grad():
            return float(criterion(student.eval()(held_out), teacher(held_out))[0])

    stats = {k: v.clone() for k, v in student.state_dict().items() if "running" in k}
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    before = gap()
    student.train()
    report = distill_recover(student, teacher, voc_split(voc_root, "train", 8), epochs=3, img_size=IMG,
                             batch_size=4, lr=1e-3, progress=False)
    assert student.training and not teacher.training
    after = gap()
    assert after < 0.8 * before, (before, after)
    assert len(report.losses) == 3 and report.losses[-1] < report.losses[0] and report.images == 8
    for key, value in student.state_dict().items():
        if "running" in key:
            assert torch.equal(value, stats[key])
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, teacher_state[key])


def test_bad_settings(yolov5n_pt: Path, voc_root: Path) -> None:
    teacher, _ = load_weights(yolov5n_pt)
    images = voc_split(voc_root, "train", 1)
    with pytest.raises(AscendSlimError, match="at least one image"):
        distill_recover(teacher, teacher, [], img_size=IMG)
    with pytest.raises(AscendSlimError, match="epochs >= 1"):
        distill_recover(teacher, teacher, images, epochs=0, img_size=IMG)
    other, _ = load_weights(yolov5n_pt)
    other.names = [*other.names[:-1], "other"]
    with pytest.raises(AscendSlimError, match="same classes"):
        distill_recover(other, teacher, images, img_size=IMG)
