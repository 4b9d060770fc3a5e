"""The C++ core on real heads: the official yolov5n checkpoint run (torch) on the shared photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import reference as ref

from ascend_slim import core


@pytest.fixture(scope="module")
def real(yolov5n_pt, images_dir):
    """(heads [2, 3, ny, nx, 85] per level, torch-decoded [2, K, 85], anchors, strides, images, ratios, pads)."""
    import torch

    from ascend_slim.model.checkpoint import load_weights

    model, _ = load_weights(yolov5n_pt)
    model.eval()
    images = [cv2.imread(str(images_dir / name)) for name in ("bus.jpg", "zidane.jpg")]
    tensor, ratios, pads = core.preprocess(images, 640)
    with torch.no_grad():
        heads = model(torch.from_numpy(tensor))
        decoded = model.decode(heads).numpy()
    return [h.numpy() for h in heads], decoded, model.anchors_px(), model.strides, images, ratios, pads


@pytest.mark.parametrize("kw", [dict(conf_thres=0.001, iou_thres=0.6, multi_label=True),
                                dict(conf_thres=0.25), dict(conf_thres=0.01, mode="mindx")], ids=str)
def test_real_heads_match_reference(real, kw):
    heads, _, anchors, strides = real[:4]
    for variant in (heads, [h.astype(np.float16) for h in heads]):
        got = core.postprocess(variant, anchors, strides, **kw)
        want = ref.postprocess(variant, anchors, strides, **kw)
        for g, w in zip(got, want):
            assert len(g) > 0
            np.testing.assert_array_equal(g, w)


def test_raw_and_decoded_paths_agree(real):
    heads, decoded, anchors, strides = real[:4]
    raw = core.postprocess(heads, anchors, strides, conf_thres=0.25)
    dec = core.postprocess_decoded(decoded, conf_thres=0.25)
    for r, d in zip(raw, dec):
        assert r.shape == d.shape
        np.testing.assert_allclose(r, d, atol=2e-3, rtol=1e-5)  # torch's float32 decode vs double in the core


def test_bus_photo_detections(real):
    heads, _, anchors, strides, images, ratios, pads = real
    dets = core.postprocess(heads, anchors, strides, conf_thres=0.25)[0]
    boxes = core.scale_boxes(dets, ratios[0], pads[0], images[0].shape)
    classes = boxes[:, 5].astype(int).tolist()
    assert 5 in classes and classes.count(0) >= 3  # the bus and the people in front of it
    bus = boxes[boxes[:, 5] == 5][0]
    assert bus[2] - bus[0] > 0.8 * images[0].shape[1]  # the bus spans the photo
