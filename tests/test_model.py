"""YOLOv5 model: official parameter counts, explicit spec, forward/decode contract, fusion, Focus as one conv,
and real detections of the official yolov5n on the sample images."""

from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np
import pytest
import torch

from ascend_slim.errors import AscendSlimError
from ascend_slim.model import YOLOv5
from ascend_slim.model.checkpoint import load_weights
from ascend_slim.model.common import C3, SPP, SPPF, Focus

# Ultralytics README (v6.0 ... v7.0; v5.0 for the Focus/SPP layout), params in millions, fused model.
README_PARAMS_M = {"yolov5n": 1.9, "yolov5s": 7.2, "yolov5m": 21.2, "yolov5l": 46.5, "yolov5x": 86.7,
                   "yolov5s-v5": 7.3}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics so fusion and equivalence tests mean something."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = torch.randn(n, generator=g) * 0.1
            m.running_mean = torch.randn(n, generator=g) * 0.1
            m.running_var = torch.rand(n, generator=g) + 0.5


@pytest.mark.parametrize("name", list(README_PARAMS_M))
def test_parameter_counts_match_ultralytics(name: str) -> None:
    model = YOLOv5.from_yaml(name)
    stored = n_params(model)
    fused = n_params(model.fuse())
    assert round(fused / 1e6, 1) == README_PARAMS_M[name]
    exact = {"yolov5n": (1_872_157, 1_867_405), "yolov5s": (7_235_389, 7_225_885)}
    if name in exact:
        assert (stored, fused) == exact[name]
    assert model.strides == [8.0, 16.0, 32.0]


def test_v5_layout_has_focus_stem_and_spp() -> None:
    model = YOLOv5.from_yaml("yolov5s-v5")
    assert isinstance(model.model[0], Focus) and isinstance(model.model[8], SPP)
    assert model.model[0].conv.conv.weight.shape == (32, 12, 3, 3)
    v6 = YOLOv5.from_yaml("yolov5s")
    assert isinstance(v6.model[9], SPPF) and v6.model[0].conv.weight.shape == (32, 3, 6, 6)


def test_spec_is_explicit_and_json_roundtrips() -> None:
    model = YOLOv5.from_yaml("yolov5n").eval()
    spec = json.loads(json.dumps(model.spec))
    c3 = spec["layers"][2]
    assert c3 == {"type": "C3", "from": -1, "cv1": 16, "cv2": 16, "cv3": 32, "m": [{"cv1": 16, "cv2": 16}],
                  "shortcut": True}
    assert len(spec["layers"][6]["m"]) == 3  # 9 repeats x depth 0.33
    assert spec["layers"][9] == {"type": "SPPF", "from": -1, "cv1": 128, "cv2": 256, "k": 5}
    assert spec["strides"] == [8.0, 16.0, 32.0] and spec["anchors"][2][2] == [373.0, 326.0]
    rebuilt = YOLOv5.from_spec(spec).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, 128, 96)
    with torch.no_grad():
        for a, b in zip(model(x), rebuilt(x)):
            assert torch.equal(a, b)


def test_state_dict_keys_follow_ultralytics() -> None:
    keys = set(YOLOv5.from_yaml("yolov5n").state_dict())
    for key in ("model.0.conv.weight", "model.0.bn.running_var", "model.2.m.0.cv2.conv.weight",
                "model.9.cv2.bn.weight", "model.24.anchors", "model.24.m.0.weight", "model.24.m.2.bias"):
        assert key in keys


def test_pruned_spec_with_arbitrary_widths_rebuilds() -> None:
    spec = YOLOv5.from_yaml("yolov5n", nc=3, names=["a", "b", "c"]).spec
    layers = spec["layers"]
    layers[0]["c2"] = 1
    layers[2].update(cv1=5, cv2=1, cv3=7, m=[{"cv1": 1, "cv2": 5}])  # 5 == cv1: residual kept
    layers[9].update(cv1=3, cv2=11)
    layers[17]["m"] = [{"cv1": 2, "cv2": 9}]
    model = YOLOv5.from_spec(json.loads(json.dumps(spec)))
    assert model.model[0].conv.weight.shape == (1, 3, 6, 6)
    assert model.model[1].conv.weight.shape[1] == 1
    assert model.model[2].m[0].add and model.model[2].cv3.conv.weight.shape == (7, 6, 1, 1)
    assert model.model[9].cv2.conv.weight.shape == (11, 12, 1, 1)
    assert model.model[24].m[0].weight.shape == (3 * 8, 64, 1, 1)
    heads = model(torch.rand(2, 3, 64, 64))
    assert [tuple(h.shape) for h in heads] == [(2, 3, 8, 8, 8), (2, 3, 4, 4, 8), (2, 3, 2, 2, 8)]
    assert model.spec["layers"] == spec["layers"]


@pytest.mark.parametrize("bad, message", [
    ({"type": "Conv2x", "from": -1}, "unknown layer type"),
    ({"type": "Conv", "from": 30, "c2": 8, "k": 3, "s": 1}, "earlier layers"),
    ({"type": "Conv", "from": -1, "c2": 0, "k": 3, "s": 1}, "positive int"),
])
def test_malformed_spec_is_refused(bad: dict, message: str) -> None:
    spec = YOLOv5.from_yaml("yolov5n").spec
    spec["layers"][3] = bad
    with pytest.raises(AscendSlimError, match=message):
        YOLOv5.from_spec(spec)


def test_unknown_yaml_name_is_refused() -> None:
    with pytest.raises(AscendSlimError, match="yolov5n"):
        YOLOv5.from_yaml("yolov9q")


def test_forward_and_decode_contract() -> None:
    model = YOLOv5.from_yaml("yolov5n")
    x = torch.rand(2, 3, 96, 160)
    train_heads = model.train()(x)
    model.eval()
    with torch.no_grad():
        heads = model(x)
        out = model.decode(heads)
    assert [tuple(h.shape) for h in heads] == [(2, 3, 12, 20, 85), (2, 3, 6, 10, 85), (2, 3, 3, 5, 85)]
    assert [tuple(h.shape) for h in train_heads] == [tuple(h.shape) for h in heads]
    assert out.shape == (2, 3 * (12 * 20 + 6 * 10 + 3 * 5), 85)
    # independent reference for one cell: level 1, anchor 2, row 4, column 7
    raw = heads[1][1, 2, 4, 7].numpy().astype(np.float64)
    sig = 1 / (1 + np.exp(-raw))
    anchor = model.anchors_px()[1, 2]
    expected = [(2 * sig[0] - 0.5 + 7) * 16, (2 * sig[1] - 0.5 + 4) * 16, (2 * sig[2]) ** 2 * anchor[0],
                (2 * sig[3]) ** 2 * anchor[1], *sig[4:]]
    row = 3 * 12 * 20 + (2 * 6 + 4) * 10 + 7
    np.testing.assert_allclose(out[1, row].numpy(), expected, rtol=1e-5, atol=1e-4)


def test_fuse_keeps_outputs() -> None:
    model = YOLOv5.from_yaml("yolov5n")
    randomize_bn(model)
    model.eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        ref = model(x)
        fused = model.fuse()(x)
    assert model.fused and not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    for a, b in zip(ref, fused):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fuse", [False, True])
def test_focus_equals_one_strided_conv(fuse: bool) -> None:
    torch.manual_seed(0)
    focus = Focus(3, 8, k=3)
    randomize_bn(focus)
    focus.eval()
    if fuse:
        focus.conv.fuse()
    conv = focus.as_conv().eval()
    assert conv.conv.kernel_size == (6, 6) and conv.conv.stride == (2, 2) and conv.conv.padding == (2, 2)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), focus(x), rtol=1e-5, atol=1e-5)


def test_meta_describes_the_model() -> None:
    model = YOLOv5.from_yaml("yolov5n", nc=2, names=["cat", "dog"])
    meta = model.meta((320, 256), head="decoded")
    assert meta.names == ["cat", "dog"] and meta.img_size == (320, 256) and meta.head == "decoded"
    assert meta.strides == [8.0, 16.0, 32.0]
    np.testing.assert_array_equal(meta.anchors, model.anchors_px())
    assert isinstance(model.model[13], C3) and not model.model[13].m[0].add


# -- real detections --------------------------------------------------------------------------------------
def letterbox(img: np.ndarray, size: int = 640, stride: int = 32) -> np.ndarray:
    """Ultralytics detect.py letterbox (auto=True): scale the long side to ``size``, pad with 114 to the next
    stride multiple, padding split with the -0.1/+0.1 rounding rule."""
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    dw, dh = (size - nw) % stride / 2, (size - nh) % stride / 2
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom, left, right = round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))


def nms(pred: np.ndarray, conf_thres: float, iou_thres: float, max_wh: float = 7680) -> np.ndarray:
    """Best-class greedy NMS on decoded ``[K, 5+nc]`` rows -> ``[M, 6]`` x1 y1 x2 y2 score class."""
    pred = pred[pred[:, 4] > conf_thres]
    scores_all = pred[:, 5:] * pred[:, 4:5]
    cls = scores_all.argmax(1)
    score = scores_all[np.arange(len(pred)), cls]
    keep = score > conf_thres
    pred, cls, score = pred[keep], cls[keep], score[keep]
    boxes = np.concatenate([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], 1)
    shifted = boxes + cls[:, None] * max_wh
    order, kept = np.argsort(-score, kind="stable"), []
    while order.size:
        i, order = order[0], order[1:]
        kept.append(i)
        a, b = shifted[i], shifted[order]
        iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
        ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
        order = order[inter / union <= iou_thres]
    return np.concatenate([boxes[kept], score[kept, None], cls[kept, None]], 1)


def detect(model: YOLOv5, path) -> list[tuple[str, float]]:
    img = letterbox(cv2.imread(str(path)), 640)
    x = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))).float()[None] / 255
    with torch.no_grad():
        pred = model.decode(model(x))[0].numpy()
    return [(model.names[int(c)], float(s)) for *_, s, c in nms(pred, 0.25, 0.45)]


@pytest.fixture(scope="module")
def yolov5n(yolov5n_pt) -> YOLOv5:
    model, _ = load_weights(yolov5n_pt)
    return model.fuse().eval()


def test_official_yolov5n_detects_bus_scene(yolov5n: YOLOv5, images_dir) -> None:
    found = detect(yolov5n, images_dir / "bus.jpg")  # 480x640 input, as Ultralytics detect.py
    assert Counter(name for name, _ in found) == {"person": 4, "bus": 1}


def test_official_yolov5n_detects_zidane_scene(yolov5n: YOLOv5, images_dir) -> None:
    found = detect(yolov5n, images_dir / "zidane.jpg")
    assert Counter(name for name, _ in found) == {"person": 2, "tie": 1}
