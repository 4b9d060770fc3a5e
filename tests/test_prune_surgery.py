"""The pruned checkpoint: reloads without yaml (weights_only), keeps classes, anchors and strides, records what was
kept, and goes through export and the Detector unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ascend_slim import Detector
from ascend_slim.classes import VOC_CLASSES
from ascend_slim.export import export_onnx
from ascend_slim.model.checkpoint import load_weights, save_checkpoint
from ascend_slim.model.remap import remap_classes
from ascend_slim.prune import build_graph, prune_channels
from ascend_slim.report.latency import open_session

IMG = 320


@pytest.fixture(scope="module")
def pruned_voc(yolov5n_pt: Path):
    model, _ = load_weights(yolov5n_pt)
    model = remap_classes(model, VOC_CLASSES).eval()
    with torch.no_grad():  # as if autoanchor had moved the anchors: they must survive pruning
        model.detect.anchors.mul_(1.1)
    return model, prune_channels(model, percent=0.2, round_to=8, img_size=IMG)


def test_checkpoint_reloads_without_yaml(pruned_voc, tmp_path: Path) -> None:
    original, result = pruned_voc
    path = save_checkpoint(tmp_path / "pruned.pt", result.model, img_size=IMG)
    raw = torch.load(path, weights_only=True)
    assert raw["spec"]["layers"][3]["c2"] == result.model.model[3].conv.out_channels < 64
    reloaded, info = load_weights(path)
    assert reloaded.names == list(VOC_CLASSES) == info["names"]
    assert reloaded.strides == original.strides
    np.testing.assert_allclose(reloaded.anchors_px(), original.anchors_px())
    x = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        for a, b in zip(result.model(x), reloaded(x)):
            assert torch.equal(a, b)
    record = info["history"][-1]
    assert record["action"] == "prune" and record["method"] == "slim" and record["round_to"] == 8
    graph = build_graph(original)
    assert set(record["kept"]) == {u.bn for u in graph.units.values()}
    stem = graph.unit_group["model.0"]
    assert record["kept"]["model.0.bn"] == result.plan.keep[stem].tolist()
    assert record["kept"]["model.2.cv1.bn"] == record["kept"]["model.2.m.0.cv2.bn"]  # residual stream
    assert record["params"][1] < record["params"][0] and record["gflops"][1] < record["gflops"][0]
    assert record["threshold"] <= record["safety_bound"]
    json.dumps(record)


def test_pruned_model_exports_and_detects(pruned_voc, tmp_path: Path, images_dir: Path) -> None:
    """Export matches torch; the Detector finds the bus. Official weights are not sparsity-trained (their
    smallest |gamma| is 0.17), so only a sliver can be pruned before finetuning without losing detections."""
    original, _ = pruned_voc
    sliver = prune_channels(original, percent=0.002, img_size=IMG)
    assert sliver.record["params"][1] < sliver.record["params"][0]
    reloaded, _ = load_weights(save_checkpoint(tmp_path / "pruned.pt", sliver.model, img_size=IMG))
    onnx_path = export_onnx(reloaded, tmp_path / "pruned.onnx", img_size=IMG)
    x = torch.rand(1, 3, IMG, IMG)
    with torch.no_grad():
        expected = [h.numpy() for h in sliver.model(x)]
    for a, b in zip(expected, open_session(onnx_path).run(None, {"images": x.numpy()})):
        np.testing.assert_allclose(b, a, atol=1e-3)
    with Detector(onnx_path, conf_thres=0.25) as det:
        dets = det.predict(images_dir / "bus.jpg")
    assert det.names == list(VOC_CLASSES) and {"bus", "person"} <= set(dets.labels)
