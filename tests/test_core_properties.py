"""Property tests of the C++ core: random shapes and values (NaN, Inf, huge), empty and degenerate inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import reference as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ascend_slim import core

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOGITS = st.one_of(st.floats(-12, 12, width=32), st.sampled_from([np.nan, np.inf, -np.inf, 3e38, -3e38, 0.0]))


@st.composite
def raw_heads(draw):
    """Heads (either layout, fp32 or fp16) with a mostly-normal logit field salted with special values."""
    nl, na = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    batch, no = draw(st.integers(1, 2)), 5 + draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    heads = []
    for _ in range(nl):
        ny, nx = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        h = rng.normal(draw(st.floats(-6, 2)), 3.0, (batch, na, ny, nx, no)).astype(np.float32)
        salt = draw(arrays(np.float32, 6, elements=LOGITS))
        flat = h.reshape(-1)
        flat[rng.integers(0, flat.size, len(salt))] = salt
        with np.errstate(over="ignore"):
            h = h.astype(dtype)  # huge values become inf in fp16
        if draw(st.booleans()):
            h = np.ascontiguousarray(h.transpose(0, 1, 4, 2, 3).reshape(batch, na * no, ny, nx))
        heads.append(h)
    anchors = rng.uniform(1, 400, (nl, na, 2))
    strides = [float(s) for s in rng.choice([4, 8, 16, 32, 64], nl)]
    return heads, anchors, strides


SETTINGS_ARGS = dict(
    conf_thres=st.sampled_from([0.0, 0.001, 0.25, 0.9, 1.0]),
    iou_thres=st.sampled_from([0.0, 0.45, 1.0]),
    multi_label=st.booleans(),
    mode=st.sampled_from(["yolov5", "mindx"]),
)


@SETTINGS
@given(case=raw_heads(), max_det=st.sampled_from([1, 5, 300]), **SETTINGS_ARGS)
def test_postprocess_outputs_are_finite_sorted_and_match_reference(case, max_det, conf_thres, iou_thres,
                                                                   multi_label, mode):
    heads, anchors, strides = case
    kw = dict(conf_thres=conf_thres, iou_thres=iou_thres, max_det=max_det, multi_label=multi_label, mode=mode)
    got = core.postprocess(heads, anchors, strides, **kw)
    with np.errstate(all="ignore"):
        want = ref.postprocess(heads, anchors, strides, **kw)
    nc = (heads[0].shape[-1] if heads[0].ndim == 5 else heads[0].shape[1] // anchors.shape[1]) - 5
    for dets, expected in zip(got, want):
        assert dets.dtype == np.float32 and dets.shape[1] == 6
        assert np.isfinite(dets).all()
        assert (np.diff(dets[:, 4]) <= 0).all()
        assert ((dets[:, 5] >= 0) & (dets[:, 5] < nc)).all()
        assert (dets[:, 4] > conf_thres).all() or len(dets) == 0
        if mode == "yolov5":
            assert len(dets) <= max_det
        np.testing.assert_array_equal(dets, expected)


@SETTINGS
@given(case=raw_heads(), shape=st.tuples(st.integers(1, 2000), st.integers(1, 2000)))
def test_boxes_land_inside_the_image(case, shape):
    heads, anchors, strides = case
    img_size = (int(max(strides)) * 4, int(max(strides)) * 2)
    dets = core.postprocess(heads, anchors, strides, conf_thres=0.0, iou_thres=0.7)[0]
    ratio, _, (top, _, left, _) = ref.letterbox_geometry(shape, img_size)
    scaled = core.scale_boxes(dets, ratio, (left, top), shape)
    assert np.isfinite(scaled).all()
    assert ((scaled[:, [0, 2]] >= 0) & (scaled[:, [0, 2]] <= shape[1])).all()
    assert ((scaled[:, [1, 3]] >= 0) & (scaled[:, [1, 3]] <= shape[0])).all()
    np.testing.assert_array_equal(scaled[:, 4:], dets[:, 4:])


PROBABILITIES = st.one_of(st.floats(0, 1, width=32), st.sampled_from([0.0, 1.0, np.nan]))


@st.composite
def decoded_rows(draw):
    """``[N, K, 5+nc]`` rows: any xywh (NaN, Inf, huge included), probabilities (or NaN) after them."""
    shape = draw(st.tuples(st.integers(1, 2), st.integers(1, 40), st.integers(6, 9)))
    xywh = draw(arrays(np.float32, (*shape[:2], 4), elements=st.one_of(st.floats(-1e3, 1e3, width=32), LOGITS)))
    probs = draw(arrays(np.float32, (*shape[:2], shape[2] - 4), elements=PROBABILITIES))
    return np.concatenate([xywh, probs], axis=2)


@SETTINGS
@given(pred=decoded_rows(), **SETTINGS_ARGS)
def test_postprocess_decoded_never_returns_non_finite(pred, conf_thres, iou_thres, multi_label, mode):
    kw = dict(conf_thres=conf_thres, iou_thres=iou_thres, multi_label=multi_label, mode=mode)
    got = core.postprocess_decoded(pred, **kw)
    with np.errstate(all="ignore"):
        want = ref.postprocess_decoded(pred, **kw)
    for dets, expected in zip(got, want):
        assert np.isfinite(dets).all() and (np.diff(dets[:, 4]) <= 0).all()
        np.testing.assert_array_equal(dets, expected)


def test_zero_candidates_give_empty_arrays():
    heads = [np.full((2, 3, 4, 4, 8), -20.0, np.float32)]
    anchors, strides = np.ones((1, 3, 2)), [8.0]
    for out in (core.postprocess(heads, anchors, strides), core.decode(heads, anchors, strides),
                core.postprocess_decoded(np.zeros((2, 10, 8), np.float32))):
        assert len(out) == 2 and all(d.shape == (0, 6) and d.dtype == np.float32 for d in out)
    assert core.scale_boxes(np.zeros((0, 6), np.float32), 0.5, (0, 0), (10, 10)).shape == (0, 6)


@pytest.mark.parametrize("shape", [(0, 3, 4, 4, 8), (1, 3, 0, 4, 8), (1, 3, 4, 0, 8), (1, 0, 4)])
def test_empty_heads_are_rejected(shape):
    with pytest.raises(ValueError, match=r"empty|rank"):
        core.postprocess([np.zeros(shape, np.float32)], np.ones((1, 3, 2)), [8.0])


@SETTINGS
@given(h=st.integers(1, 700), w=st.integers(1, 700), size=st.tuples(st.integers(1, 400), st.integers(1, 400)),
       auto=st.booleans(), scaleup=st.booleans(), seed=st.integers(0, 1000))
def test_letterbox_any_shape_matches_opencv(h, w, size, auto, scaleup, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (3, 3), 0)  # photo-like neighbourhoods
    out, ratio, pad = core.letterbox(img, size, auto=auto, scaleup=scaleup, stride=32)
    want, want_ratio, want_pad = ref.letterbox(img, size, auto=auto, scaleup=scaleup, stride=32)
    assert out.shape == want.shape and (ratio, pad) == (want_ratio, want_pad)
    assert np.abs(out.astype(np.int16) - want).max() <= 1
    tensor, _, _ = core.preprocess(img, size, auto=auto, scaleup=scaleup)
    np.testing.assert_array_equal(tensor[0], out[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("shape", [(1, 1), (1, 5000), (5000, 1), (3, 2000)])
def test_letterbox_thin_images(shape):
    img = np.full((*shape, 3), 200, np.uint8)
    out, ratio, (left, top) = core.letterbox(img, 640)
    assert out.shape == (640, 640, 3)
    nh, nw = max(1, round(shape[0] * ratio)), max(1, round(shape[1] * ratio))
    np.testing.assert_array_equal(out[top:top + nh, left:left + nw], 200)
    assert (out == 114).sum() == 3 * (640 * 640 - nh * nw)
