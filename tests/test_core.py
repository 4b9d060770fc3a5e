"""The C++ core against the numpy/OpenCV reference (tests/reference.py), known boxes and argument checks."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import reference as ref

from ascend_slim import _core, core

ANCHORS, STRIDES = ref.YOLOV5_ANCHORS, ref.YOLOV5_STRIDES


@pytest.fixture(scope="module")
def photos(images_dir) -> dict[str, np.ndarray]:
    return {p.stem: cv2.imread(str(p)) for p in sorted(images_dir.glob("*.jpg"))}


def conv_layout(head: np.ndarray) -> np.ndarray:
    """``[N, na, ny, nx, no]`` -> ``[N, na*no, ny, nx]``."""
    n, na, ny, nx, no = head.shape
    return np.ascontiguousarray(head.transpose(0, 1, 4, 2, 3).reshape(n, na * no, ny, nx))


def small_heads(seed: int, nc: int = 7, batch: int = 2, dtype=np.float32, conv: bool = False) -> list[np.ndarray]:
    """Random heads at a 64x48 input with many candidates and overlapping boxes."""
    rng = np.random.default_rng(seed)
    heads = [rng.normal(-1.0, 2.5, (batch, 3, ny, nx, 5 + nc)).astype(dtype) for ny, nx in ((8, 6), (4, 3), (2, 2))]
    return [conv_layout(h) for h in heads] if conv else heads


@pytest.fixture(params=[True, False], ids=["simd", "scalar"])
def simd(request):
    """Runs a test with the SIMD kernels and again with their portable scalar twins."""
    if request.param and not _core._set_simd_enabled(True):
        pytest.skip("this build has no SIMD kernels")
    _core._set_simd_enabled(request.param)
    yield request.param
    _core._set_simd_enabled(True)


def assert_same_dets(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


# -- letterbox / preprocess -------------------------------------------------------------------------------
LETTERBOX_CASES = [
    dict(size=(640, 640)),
    dict(size=(333, 517)),  # odd sizes, both axes resampled
    dict(size=(1280, 1280)),  # upscaling
    dict(size=(1280, 1280), scaleup=False),
    dict(size=(640, 640), auto=True),
    dict(size=(255, 101), auto=True, stride=7),
    dict(size=(64, 48), color=0),
]


@pytest.mark.parametrize("case", LETTERBOX_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_letterbox_matches_opencv(photos, case, simd):
    for name, img in photos.items():
        out, ratio, pad = core.letterbox(img, **case)
        want, want_ratio, want_pad = ref.letterbox(img, **case)
        assert out.shape == want.shape and out.dtype == np.uint8, name
        assert ratio == want_ratio and pad == want_pad, name
        diff = np.abs(out.astype(np.int16) - want)
        assert diff.max() <= 1, name
        assert (diff == 0).mean() > 0.999, name  # bit-compatible with OpenCV's fixed point in practice


def test_letterbox_accepts_non_contiguous(photos):
    img = photos["bus"]
    view = img[::2, ::-1]
    out, _, _ = core.letterbox(view, 320)
    np.testing.assert_array_equal(out, core.letterbox(np.ascontiguousarray(view), 320)[0])


def test_preprocess_float_matches_reference(photos, simd):
    for img in photos.values():
        tensor, ratios, pads = core.preprocess(img, 640)
        want = ref.preprocess(img, (640, 640))
        assert tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32 and tensor.flags.c_contiguous
        assert np.abs(tensor - want).max() <= 1 / 255 + 1e-7
        _, ratio, pad = ref.letterbox(img, (640, 640))
        assert ratios.dtype == np.float64 and ratios.tolist() == [ratio]
        assert pads.tolist() == [list(pad)]


def test_preprocess_batch_formats(photos, simd):
    imgs = list(photos.values())
    size = (384, 640)
    f32, ratios, pads = core.preprocess(imgs, size)
    u8_chw, _, _ = core.preprocess(imgs, size, dtype=np.uint8)
    u8_hwc, _, _ = core.preprocess(imgs, size, dtype="uint8", layout="NHWC")
    f16, _, _ = core.preprocess(imgs, size, dtype=np.float16)
    assert f32.shape == (len(imgs), 3, 384, 640) and u8_hwc.shape == (len(imgs), 384, 640, 3)
    for i, img in enumerate(imgs):
        lb, ratio, pad = core.letterbox(img, size)
        rgb = lb[:, :, ::-1]
        np.testing.assert_array_equal(u8_hwc[i], rgb)
        np.testing.assert_array_equal(u8_chw[i], rgb.transpose(2, 0, 1))
        np.testing.assert_array_equal(f32[i], rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
        np.testing.assert_array_equal(f16[i], (rgb.transpose(2, 0, 1).astype(np.float32) / 255).astype(np.float16))
        assert ratios[i] == ratio and tuple(pads[i]) == pad


@pytest.mark.parametrize("shape", [(1, 1), (1, 700), (900, 1), (17, 33), (480, 640), (3000, 41), (123, 4567)])
def test_simd_and_scalar_resize_agree(shape):
    """The AVX2 kernels (deinterleave, windowed horizontal pass, vertical blend, /255) give bit-identical
    results to the scalar ones on noise images of extreme shapes and scales, and stay within OpenCV's rounding."""
    img = np.random.default_rng(shape[0] * 7 + shape[1]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for size in ((640, 640), (333, 517), shape):
        outs = {}
        for simd in (True, False):
            _core._set_simd_enabled(simd)
            try:
                outs[simd] = [core.letterbox(img, size)[0], *(core.preprocess(img, size, dtype=dt)[0]
                                                              for dt in (np.float32, np.float16, np.uint8))]
            finally:
                _core._set_simd_enabled(True)
        for a, b in zip(outs[True], outs[False]):
            np.testing.assert_array_equal(a, b)
        assert np.abs(outs[True][0].astype(np.int16) - ref.letterbox(img, size)[0]).max() <= 1


def test_float_conversion_is_exact_for_every_value(simd):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img = np.stack([grey, grey[::-1], grey.T], axis=2)  # no resize: every value reaches the conversion
    tensor = core.preprocess(img, (16, 16))[0][0]
    np.testing.assert_array_equal(tensor, img[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255))


def test_preprocess_auto_batch_needs_one_shape(photos):
    with pytest.raises(ValueError, match="auto=True"):
        core.preprocess(list(photos.values()), 640, auto=True)


# -- decode / postprocess parity --------------------------------------------------------------------------
@pytest.mark.parametrize("conv", [False, True], ids=["cells-last", "conv"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("multi_label", [False, True], ids=["best", "multi"])
@pytest.mark.parametrize("mode", ["yolov5", "mindx"])
def test_postprocess_matches_reference(conv, dtype, multi_label, mode, simd):
    for seed in range(3):
        heads = small_heads(seed, dtype=dtype, conv=conv)
        kw = dict(conf_thres=0.2, iou_thres=0.5, max_det=25, multi_label=multi_label, mode=mode)
        got = core.postprocess(heads, ANCHORS, STRIDES, **kw)
        assert_same_dets(got, ref.postprocess(heads, ANCHORS, STRIDES, **kw))
        if mode == "yolov5":
            assert all(len(d) == 25 for d in got)  # the cap applies
        else:
            assert all(len(d) > 25 for d in got)  # mindx: no max_det cap


@pytest.mark.parametrize("multi_label", [False, True])
def test_decode_matches_reference(multi_label, simd):
    heads = small_heads(5, dtype=np.float16)
    got = core.decode(heads, ANCHORS, STRIDES, conf_thres=0.3, multi_label=multi_label)
    for dets, (boxes, scores, classes) in zip(got, ref.decode(heads, ANCHORS, STRIDES, 0.3, multi_label)):
        np.testing.assert_array_equal(dets[:, :4], boxes)
        np.testing.assert_array_equal(dets[:, 4], scores)
        np.testing.assert_array_equal(dets[:, 5], classes)


def test_detector_like_heads_at_eval_and_detect_thresholds(simd):
    heads = ref.detector_like_heads(np.random.default_rng(3), batch=2, img_size=320)
    for conf, multi_label in ((0.001, True), (0.25, False)):
        kw = dict(conf_thres=conf, iou_thres=0.6, multi_label=multi_label)
        got = core.postprocess(heads, ANCHORS, STRIDES, **kw)
        assert_same_dets(got, ref.postprocess(heads, ANCHORS, STRIDES, **kw))
        assert all(len(d) for d in got)


def test_classes_filter_and_agnostic():
    heads = small_heads(7)
    for kw in (dict(classes=[1, 4]), dict(classes=[]), dict(agnostic=True), dict(classes=[2], mode="mindx")):
        got = core.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.2, **kw)
        assert_same_dets(got, ref.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.2, **kw))
    only = core.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.2, classes=[1, 4])
    assert all(set(np.unique(d[:, 5])) <= {1.0, 4.0} for d in only)


def test_mindx_objectness_threshold_is_separate():
    heads = small_heads(8)
    loose = core.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.3, mode="mindx", obj_thres=0.05)
    strict = core.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.3, mode="mindx", obj_thres=0.9)
    assert_same_dets(loose, ref.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.3, mode="mindx", obj_thres=0.05))
    assert_same_dets(strict, ref.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.3, mode="mindx", obj_thres=0.9))
    assert sum(map(len, strict)) < sum(map(len, loose))


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_postprocess_decoded_matches_reference(multi_label, dtype, simd):
    rng = np.random.default_rng(11)
    xy = rng.uniform(0, 64, (2, 300, 2))
    wh = rng.uniform(1, 30, (2, 300, 2))
    probs = rng.uniform(0, 1, (2, 300, 9)) ** 3
    pred = np.concatenate([xy, wh, probs], axis=2).astype(dtype)
    for mode in ("yolov5", "mindx"):
        kw = dict(conf_thres=0.05, iou_thres=0.5, max_det=40, multi_label=multi_label, mode=mode)
        got = core.postprocess_decoded(pred, **kw)
        assert_same_dets(got, ref.postprocess_decoded(pred, **kw))


def smallest_passing(passes, start: float) -> np.float32:
    """The smallest float32 ``c`` with ``passes(c)`` (``passes`` monotone), searched from ``start``."""
    c = np.float32(start)
    while passes(c):
        c = np.nextafter(c, np.float32(-np.inf))
    while not passes(c):
        c = np.nextafter(c, np.float32(np.inf))
    return c


def test_logit_screens_are_exact_at_the_threshold(simd):
    """The float pre-screens of objectness and class logits never drop a candidate: logits one float32 step
    either side of the exact double decisions (sigmoid(t_obj) > conf, obj * sigmoid(c) > conf) come out as
    those decisions say, in multi-label and best-class mode."""
    conf, nc = 0.001, 9
    sig = lambda t: 1 / (1 + math.exp(-float(t)))  # noqa: E731
    heads = [np.full((1, 3, 32 // int(s), 32 // int(s), 5 + nc), -30.0, np.float32) for s in STRIDES]
    cells = heads[0][0].reshape(-1, 5 + nc)
    t_obj = np.linspace(-6.5, 9.0, 24, dtype=np.float32)
    for k, t in enumerate(t_obj):  # class logits below, at and above the boundary, at varying positions
        obj = sig(t)
        c = smallest_passing(lambda c, obj=obj: obj * sig(c) > conf, logit(np.array(conf / obj)))
        cells[k, 4] = t
        cells[k, 5 + k % 3:8 + k % 3] = [np.nextafter(c, np.float32(-np.inf)), c, np.nextafter(c, np.float32(np.inf))]
    t = smallest_passing(lambda t: sig(t) > conf, logit(np.array(conf)))
    for k, t_edge in enumerate([np.nextafter(t, np.float32(-np.inf)), t, np.nextafter(t, np.float32(np.inf))]):
        cells[len(t_obj) + k, 4] = t_edge  # objectness at the boundary, a certain class
        cells[len(t_obj) + k, 5 + k] = 30.0
    for multi_label, per_cell in ((True, 2), (False, 1)):
        got = core.decode(heads, ANCHORS, STRIDES, conf, multi_label)[0]
        boxes, scores, classes = ref.decode(heads, ANCHORS, STRIDES, conf, multi_label)[0]
        np.testing.assert_array_equal(got[:, :4], boxes)
        assert len(got) == len(scores) == per_cell * len(t_obj) + 2
        np.testing.assert_array_equal(got[:, 4], scores)
        np.testing.assert_array_equal(got[:, 5], classes)


# -- known boxes ------------------------------------------------------------------------------------------
def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def encode(boxes: list[tuple[int, int, int, int, float, float]], nc: int, img: int = 256) -> list[np.ndarray]:
    """Heads holding exactly the given ``(level, anchor, gy, gx, dx, dy)`` cells: sigmoid(tx) = (dx + 1) / 2
    (so the centre sits ``dx`` cells right of the cell centre), wh logits 0 (box = anchor), class ``anchor %
    nc``. Everything else has objectness logit -30."""
    heads = [np.full((1, 3, img // int(s), img // int(s), 5 + nc), -30.0) for s in STRIDES]
    for level, a, gy, gx, dx, dy in boxes:
        cell = heads[level][0, a, gy, gx]
        cell[:] = -30.0
        cell[0], cell[1] = logit(np.array([(dx + 1) / 2, (dy + 1) / 2]))
        cell[2:4] = 0.0
        cell[4] = 6.0
        cell[5 + a % nc] = 4.0
    return [h.astype(np.float32) for h in heads]


def test_known_boxes_come_back():
    cells = [(0, 0, 3, 5, 0.0, 0.0), (0, 2, 20, 20, 0.25, -0.25), (1, 1, 7, 2, 0.0, 0.0), (2, 2, 4, 4, 0.0, 0.0)]
    heads = encode(cells, nc=4)
    for conv in (False, True):
        dets = core.postprocess([conv_layout(h) for h in heads] if conv else heads, ANCHORS, STRIDES,
                                conf_thres=0.5, iou_thres=0.99)[0]
        assert len(dets) == len(cells)
        want = []
        for level, a, gy, gx, dx, dy in cells:
            s = STRIDES[level]
            cx, cy = (gx + 0.5 + dx) * s, (gy + 0.5 + dy) * s
            w, h = ANCHORS[level, a]
            want.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, a % 4])
        got = sorted(dets[:, [0, 1, 2, 3, 5]].tolist())
        np.testing.assert_allclose(got, sorted(want), atol=2e-4)
        np.testing.assert_allclose(dets[:, 4], 1 / (1 + math.exp(-6)) / (1 + math.exp(-4)), rtol=1e-6)
        exact = dets[np.isclose(dets[:, 0], want[0][0])][0]  # dx = dy = 0: sigmoid(0) = 0.5 exactly
        assert exact[:4].tolist() == want[0][:4]


def test_nan_and_inf_logits_give_finite_boxes():
    heads = encode([(0, 0, 3, 5, 0.0, 0.0), (1, 1, 7, 2, 0.0, 0.0), (2, 2, 4, 4, 0.0, 0.0)], nc=3)
    heads[0][0, 0, 3, 5, 0] = np.nan  # NaN box logit: the cell is dropped
    heads[1][0, 1, 7, 2, 2] = np.inf  # infinite wh logit: (2 * 1)^2 * anchor
    heads[2][0, 2, 4, 4, 5:] = np.inf  # infinite class logits: score = objectness
    heads[2][0, 0, 0, 0, 4] = np.nan  # NaN objectness: never a candidate
    dets = core.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.1, iou_thres=0.99)[0]
    assert len(dets) == 2 and np.isfinite(dets).all()
    wide = dets[dets[:, 5] == 1][0]
    assert wide[2] - wide[0] == pytest.approx(4 * ANCHORS[1, 1, 0])
    assert dets[0, 4] == pytest.approx(1 / (1 + math.exp(-6)))


# -- nms --------------------------------------------------------------------------------------------------
def test_nms_tie_order_and_suppression():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10], [100, 0, 110, 9]],
                     dtype=np.float32)
    scores = np.array([0.5, 0.5, 0.5, 0.9, 0.5], dtype=np.float32)
    classes = np.array([0, 0, 0, 1, 0])
    # class-aware: box 3 (class 1) cannot suppress; 0 and 1 tie, 0 comes first and suppresses 1 (IoU 0.82)
    assert core.nms(boxes, scores, classes, iou_thres=0.5).tolist() == [3, 0, 2, 4]
    assert core.nms(boxes, scores, classes, iou_thres=0.5, agnostic=True).tolist() == [3, 2, 4]
    assert core.nms(boxes, scores, classes, iou_thres=0.9).tolist() == [3, 0, 1, 2, 4]
    assert core.nms(boxes, scores, classes, iou_thres=0.5, max_det=2).tolist() == [3, 0]
    assert core.nms(boxes, scores, classes.astype(np.float32), iou_thres=0.5, max_nms=2).tolist() == [3, 0]
    same = np.repeat(boxes[:1], 2, axis=0), np.ones(2, np.float32)
    assert core.nms(*same, np.array([2**24, 2**24 - 1], np.float32)).tolist() == [0, 1]  # large but distinct
    assert core.nms(*same, np.array([2**62, 2**62 + 1], np.int64)).tolist() == [0, 1]
    assert core.nms(*same, np.full(2, 2**63 - 1, np.uint64)).tolist() == [0]
    iou01 = 90 / 110
    assert core.nms(boxes[:2], scores[:2], classes[:2], iou_thres=np.float32(iou01)).tolist() == [0, 1]
    assert core.nms(boxes[:2], scores[:2], classes[:2], iou_thres=np.nextafter(np.float32(iou01), 0)).tolist() == [0]


def test_nms_matches_reference_and_drops_nan_scores():
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 100, (500, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (500, 2))], axis=1).astype(np.float32)
    scores = np.round(rng.uniform(0, 1, 500), 2).astype(np.float32)  # many ties
    scores[::50] = np.nan
    classes = rng.integers(0, 3, 500)
    for kw in (dict(), dict(agnostic=True), dict(max_det=None), dict(max_det=7, max_nms=100)):
        got = core.nms(boxes, scores, classes, **kw)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, ref.nms(boxes, scores, classes, **kw))
        assert not np.isnan(scores[got]).any()
    assert core.nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0)).shape == (0,)


# -- scale_boxes ------------------------------------------------------------------------------------------
def test_scale_boxes_matches_reference_and_clips():
    dets = np.array([[-5, 10, 700, 300, 0.9, 2], [100, 100, 200, 200, 0.5, 0], [80, 0, 90, 640, 0.4, 1]],
                    dtype=np.float32)
    got = core.scale_boxes(dets, 0.5, (80, 0), (1280, 960))
    np.testing.assert_array_equal(got, ref.scale_boxes(dets, 0.5, (80, 0), (1280, 960)))
    assert got[0].tolist()[:4] == [0, 20, 960, 600] and got[1].tolist() == [40, 200, 240, 400, 0.5, 0]
    assert got[2, 3] == 1280
    assert dets[0, 0] == -5  # input untouched


def test_letterbox_round_trip_maps_boxes_back(photos):
    img = photos["zidane"]
    _, ratio, pad = core.letterbox(img, 640)
    box = np.array([[100.0, 50.0, 400.0, 700.0, 1.0, 0.0]], dtype=np.float32)
    in_letterbox = box.copy()
    in_letterbox[:, [0, 2]] = box[:, [0, 2]] * ratio + pad[0]
    in_letterbox[:, [1, 3]] = box[:, [1, 3]] * ratio + pad[1]
    np.testing.assert_allclose(core.scale_boxes(in_letterbox, ratio, pad, img.shape), box, atol=1e-3)


# -- argument checks at the binding boundary --------------------------------------------------------------
H = small_heads(0, batch=1)
IMG = np.zeros((20, 30, 3), np.uint8)
BOXES, SCORES, CLASSES = np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros(2)


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: core.postprocess(H[0], ANCHORS, STRIDES), TypeError, "heads: expected a list"),
    (lambda: core.postprocess([], ANCHORS, STRIDES), ValueError, "heads: empty"),
    (lambda: core.postprocess([h.astype(np.float64) for h in H], ANCHORS, STRIDES), TypeError, r"heads\[0\].*float64"),
    (lambda: core.postprocess([H[0], H[1][0, 0], H[2]], ANCHORS, STRIDES), ValueError, r"heads\[1\].*rank"),
    (lambda: core.postprocess([H[0], H[1], H[2][:, :2]], ANCHORS, STRIDES), ValueError, r"heads\[2\].*anchors"),
    (lambda: core.postprocess([H[0], H[1], H[2][..., :9]], ANCHORS, STRIDES), ValueError, r"heads\[2\].*differ"),
    (lambda: core.postprocess([H[0], H[1], H[2][:, :, :0]], ANCHORS, STRIDES), ValueError, r"heads\[2\]: empty"),
    (lambda: core.postprocess([h[..., :5] for h in H], ANCHORS, STRIDES), ValueError, r"heads\[0\].*>= 6"),
    (lambda: core.postprocess([conv_layout(H[0])[:, :-1]], ANCHORS[:1], STRIDES[:1]), ValueError, "multiple"),
    (lambda: core.postprocess(H, ANCHORS[:2], STRIDES), ValueError, "anchors: expected shape"),
    (lambda: core.postprocess(H, -ANCHORS, STRIDES), ValueError, "anchors: values must be positive"),
    (lambda: core.postprocess(H, ANCHORS, STRIDES[:2]), ValueError, "strides: expected 3"),
    (lambda: core.postprocess(H, ANCHORS, [8, 16, np.nan]), ValueError, "strides: values must be finite"),
    (lambda: core.postprocess(H, ANCHORS, STRIDES, conf_thres=1.5), ValueError, "conf_thres"),
    (lambda: core.postprocess(H, ANCHORS, STRIDES, iou_thres=-0.1), ValueError, "iou_thres"),
    (lambda: core.postprocess(H, ANCHORS, STRIDES, obj_thres=2.0), ValueError, "obj_thres"),
    (lambda: core.postprocess(H, ANCHORS, STRIDES, max_det=0), ValueError, "max_det"),
    (lambda: core.postprocess(H, ANCHORS, STRIDES, mode="ssd"), ValueError, "mode"),
    (lambda: core.postprocess(H, ANCHORS, STRIDES, classes="person"), TypeError, "classes"),
    (lambda: core.postprocess(H, ANCHORS, STRIDES, classes=[1.5]), TypeError, "classes"),
    (lambda: core.postprocess(H, ANCHORS, STRIDES, num_threads=0), ValueError, "num_threads"),
    (lambda: core.postprocess_decoded(np.zeros((1, 4, 85), np.int32)), TypeError, "pred: expected a float32"),
    (lambda: core.postprocess_decoded(np.zeros((4, 85), np.float32)), ValueError, "pred: expected rank 3"),
    (lambda: core.postprocess_decoded(np.zeros((1, 0, 85), np.float32)), ValueError, "pred: empty"),
    (lambda: core.postprocess_decoded(np.full((1, 4, 7), 3.0, np.float32)), ValueError,
     r"pred: objectness 3 \(image 0, row 0\) is not a probability"),
    (lambda: core.postprocess_decoded(np.full((1, 4, 7), -0.5, np.float16)), ValueError, "objectness -0.5"),
    (lambda: core.postprocess_decoded(np.concatenate([np.full((1, 4, 5), 0.9), np.full((1, 4, 2), 7.0)], axis=2)
                                      .astype(np.float32)), ValueError, "pred: class score 7"),
    (lambda: core.nms(BOXES.astype(np.float64), SCORES, CLASSES), TypeError, "boxes: expected float32"),
    (lambda: core.nms(BOXES[:, :3], SCORES, CLASSES), ValueError, r"boxes: expected shape \(K, 4\)"),
    (lambda: core.nms(BOXES, SCORES[:1], CLASSES), ValueError, "scores: expected shape"),
    (lambda: core.nms(BOXES, SCORES, CLASSES[:1]), ValueError, "classes: expected shape"),
    (lambda: core.nms(BOXES, SCORES, np.array(["a", "b"])), TypeError, "classes: expected an integer"),
    (lambda: core.nms(BOXES, SCORES, np.array([0, np.nan])), ValueError, "classes: float64 id nan at index 1"),
    (lambda: core.nms(BOXES, SCORES, np.array([0, 1.5], np.float32)), ValueError, "id 1.5 .* not a whole number"),
    (lambda: core.nms(BOXES, SCORES, np.array([1e20, 1e20 + 1e5])), ValueError, r"within \+-2\^53"),
    (lambda: core.nms(BOXES, SCORES, np.array([2**24 + 2, 0], np.float32)), ValueError, r"within \+-2\^24"),
    (lambda: core.nms(BOXES, SCORES, np.array([2**64 - 1, 0], np.uint64)), ValueError, "does not fit in int64"),
    (lambda: core.nms([[0, 0, 1, 1]], SCORES[:1], CLASSES[:1]), TypeError, "boxes: expected a numpy array"),
    (lambda: core.scale_boxes(np.zeros((1, 5), np.float32), 1.0, (0, 0), (10, 10)), ValueError, "dets"),
    (lambda: core.scale_boxes(np.zeros((1, 6)), 1.0, (0, 0), (10, 10)), TypeError, "dets: expected float32"),
    (lambda: core.scale_boxes(np.zeros((1, 6), np.float32), 0.0, (0, 0), (10, 10)), ValueError, "ratio"),
    (lambda: core.scale_boxes(np.full((1, 6), np.inf, np.float32), 1.0, (0, 0), (10, 10)), ValueError, "finite"),
    (lambda: core.scale_boxes(np.zeros((1, 6), np.float32), 1.0, (0, 0), (0, 10)), ValueError, "orig_shape"),
    (lambda: core.letterbox(IMG.astype(np.float32), 64), TypeError, "img: expected a uint8 image"),
    (lambda: core.letterbox(IMG[..., 0], 64), ValueError, r"img: expected an HxWx3"),
    (lambda: core.letterbox(IMG[:0], 64), ValueError, "img: empty"),
    (lambda: core.letterbox(IMG, 0), ValueError, "size"),
    (lambda: core.letterbox(IMG, (640.7, 640)), ValueError, r"image size .* got \(640.7, 640\)"),
    (lambda: core.preprocess(IMG, (64, 64, 3)), ValueError, "image size"),
    (lambda: core.letterbox(IMG, 64, color=114.5), TypeError, "color"),
    (lambda: core.letterbox(IMG, 64, color=(1, 2, 3.5)), TypeError, "color: expected an integer"),
    (lambda: core.letterbox(IMG, 64, stride=0), ValueError, "stride"),
    (lambda: core.letterbox(IMG, 64, color=(1, 2)), ValueError, "color: expected 3"),
    (lambda: core.letterbox(IMG, 64, color=300), ValueError, "color: values"),
    (lambda: core.preprocess([], 64), ValueError, "images: empty"),
    (lambda: core.preprocess([IMG, IMG[..., :2]], 64), ValueError, r"images\[1\]"),
    (lambda: core.preprocess(IMG, 64, dtype=np.int32), TypeError, "dtype"),
    (lambda: core.preprocess(IMG, 64, layout="CHW"), ValueError, "layout"),
])
def test_bad_arguments_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_non_contiguous_heads_are_copied():
    heads = small_heads(4)
    strided = [np.asfortranarray(h) for h in heads]
    assert not strided[0].flags.c_contiguous
    assert_same_dets(core.postprocess(strided, ANCHORS, STRIDES, conf_thres=0.2),
                     core.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.2))


def test_binding_takes_settings_by_keyword_only():
    """A reordered argument list in bindings.cpp cannot silently swap settings: the binding refuses positions,
    and conf/iou/max_det each act as themselves."""
    heads = encode([(0, 0, 3, 5, 0.0, 0.0), (0, 1, 3, 5, 0.0, 0.0)], nc=4)  # same cell: near-identical boxes
    with pytest.raises(TypeError):
        _core.postprocess(heads, ANCHORS, STRIDES, 0.5, 0.45, 300, False, False, None, "yolov5", None, 1)
    score = 1 / (1 + math.exp(-6)) / (1 + math.exp(-4))  # ~0.98 for both boxes
    a, b = core.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.5, iou_thres=1.0, agnostic=True)[0][:2, :4]
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    overlap = inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)
    assert 0.05 < overlap < 0.95
    # conf below the score and iou below the overlap: one box survives NMS; a swap would keep none or both.
    assert len(core.postprocess(heads, ANCHORS, STRIDES, conf_thres=score - 0.01, iou_thres=overlap - 0.01,
                                agnostic=True)[0]) == 1
    assert len(core.postprocess(heads, ANCHORS, STRIDES, conf_thres=score + 0.001, iou_thres=0.99)[0]) == 0
    assert len(core.postprocess(heads, ANCHORS, STRIDES, conf_thres=0.5, iou_thres=1.0, max_det=1)[0]) == 1
