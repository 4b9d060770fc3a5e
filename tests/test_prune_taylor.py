"""YOLO-loss Taylor importance: the score is the squared first-order loss change of removing a channel (checked by
finite differences, a residual stream summed over its units), zero for channels that already output nothing; the
label-free version uses the official model's own detections on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from prune_cases import random_bn_model

from ascend_slim import core
from ascend_slim.errors import AscendSlimError
from ascend_slim.imageio import read_image
from ascend_slim.model.checkpoint import load_weights
from ascend_slim.prune import build_graph
from ascend_slim.prune.importance import PseudoLabelTaylorImportance, TaylorImportance, pseudo_labels
from ascend_slim.train.loss import YoloLoss

IMG = 96


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, IMG, IMG, generator=g)
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.3, 0.4], [1, 0, 0.3, 0.6, 0.2, 0.2], [1, 2, 0.7, 0.3, 0.4, 0.3]])
    return images, targets


def test_score_is_the_squared_first_order_change() -> None:
    """sqrt(score) = |dL/dt| for the gammas of a channel scaled by (1 + t) in all units of its group, at t = 0
    (autograd through one scalar t, an independent path): a single unit and a residual stream."""
    model = random_bn_model("yolov5n", seed=5, nc=3)
    graph = build_graph(model)
    images, targets = batch(0)
    scores = TaylorImportance([(images, targets)], IMG)(model, graph)
    assert [s.numel() for s in scores] == [g.width for g in graph.groups]
    assert all(p.requires_grad for p in model.parameters()) and not model.training
    assert all(p.grad is None for p in model.parameters())
    loss = YoloLoss(model, IMG)
    top = [float(s.max()) for s in scores]
    single = max((i for i, g in enumerate(graph.groups) if len(g.units) == 1), key=top.__getitem__)
    residual = max((i for i, g in enumerate(graph.groups) if len(g.units) > 1), key=top.__getitem__)
    for index in (single, residual):
        bns = [model.get_submodule(graph.units[u].bn) for u in graph.groups[index].units]
        channel = int(scores[index].argmax())
        t = torch.zeros((), requires_grad=True)
        saved = [bn.weight for bn in bns]
        for bn, weight in zip(bns, saved):
            del bn.weight
            bn.weight = weight.detach() * (1 + t * (torch.arange(weight.numel()) == channel))
        loss(model(images), targets)[0].backward()
        for bn, weight in zip(bns, saved):
            del bn.weight
            bn.weight = weight
        assert float(scores[index][channel]) ** 0.5 == pytest.approx(abs(float(t.grad)), rel=1e-4)
        assert abs(float(t.grad)) > 0


def test_dead_channels_score_zero_and_batches_add() -> None:
    model = random_bn_model("yolov5n", seed=6, nc=3)
    graph = build_graph(model)
    unit = graph.units[graph.groups[3].units[0]]
    with torch.no_grad():
        model.get_submodule(unit.bn).weight[:4] = 0
    one, two = batch(1), batch(2)
    a = TaylorImportance([one], IMG)(model, graph)
    b = TaylorImportance([two], IMG)(model, graph)
    both = TaylorImportance([one, two], IMG)(model, graph)
    assert (a[3][:4] == 0).all() and (a[3][4:] > 0).all()
    for x, y, z in zip(a, b, both):
        torch.testing.assert_close(x + y, z)
    with pytest.raises(AscendSlimError, match="at least one batch"):
        TaylorImportance([], IMG)(model, graph)


def test_pseudo_labels_are_the_models_own_detections(yolov5n_pt: Path, images_dir: Path) -> None:
    model, _ = load_weights(yolov5n_pt)
    tensor, _, _ = core.preprocess([read_image(images_dir / "bus.jpg"), read_image(images_dir / "zidane.jpg")],
                                   (320, 320))
    targets = pseudo_labels(model.eval(), torch.from_numpy(np.ascontiguousarray(tensor)))
    assert targets.shape[1] == 6 and targets.dtype == torch.float32
    assert ((targets[:, 2:] >= 0) & (targets[:, 2:] <= 1)).all()
    bus, zidane = targets[targets[:, 0] == 0], targets[targets[:, 0] == 1]
    assert {0, 5} <= set(bus[:, 1].long().tolist())  # people and the bus
    assert 0 in zidane[:, 1].long().tolist() and len(zidane) < len(bus)
    assert len(pseudo_labels(model, torch.from_numpy(np.ascontiguousarray(tensor)), conf_thres=0.99)) == 0


def test_label_free_taylor_on_photos(yolov5n_pt: Path, images_dir: Path) -> None:
    model, _ = load_weights(yolov5n_pt)
    graph = build_graph(model)
    photos = [images_dir / "bus.jpg", images_dir / "zidane.jpg"]
    scores = PseudoLabelTaylorImportance(photos, 160, batch_size=1)(model, graph)
    labelled = TaylorImportance([(torch.from_numpy(np.ascontiguousarray(core.preprocess(read_image(p), (160, 160))[0])),
                                  pseudo_labels(model, torch.from_numpy(np.ascontiguousarray(
                                      core.preprocess(read_image(p), (160, 160))[0])))) for p in photos],
                                160)(model, graph)
    for s, t in zip(scores, labelled):  # the same thing, built from the model's detections
        torch.testing.assert_close(s, t)
    assert all(bool(torch.isfinite(s).all()) for s in scores) and sum(float(s.sum()) for s in scores) > 0
    with pytest.raises(AscendSlimError, match="at least one image"):
        PseudoLabelTaylorImportance([], 160)
