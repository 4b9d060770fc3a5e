"""A bounded fuzz run of every C++ core function: random, often malformed, arguments.

Each case is run with the SIMD kernels and again with their scalar twins. Every call must either return a
well-formed result (the same on both paths) or raise ``TypeError``/``ValueError`` naming an argument; a
crash or any other exception fails the run. The seed is fixed so a failure reproduces; the case
count keeps the run to a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ascend_slim import _core, core

CASES = 3000
OTHER_DTYPES = [np.float16, np.float64, np.int32, np.uint8, np.bool_, object]
SPECIAL = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 0.0, 1.0, -1.0, 1e-30], np.float64)
ARGUMENT_NAMES = ("heads", "anchors", "strides", "pred", "boxes", "scores", "classes", "img", "images", "dets",
                  "size", "color", "stride", "ratio", "pad", "orig_shape", "conf_thres", "iou_thres", "obj_thres",
                  "max_det", "max_nms", "num_threads", "mode", "dtype", "layout", "image size")


def pick(rng: np.random.Generator, options: list):
    return options[rng.integers(len(options))]


def dtype(rng: np.random.Generator, good: type = np.float32, rate: float = 0.1) -> type:
    """``good`` mostly, another dtype (float16 included) at ``rate``."""
    return pick(rng, OTHER_DTYPES) if rng.random() < rate else good


def corrupt(rng: np.random.Generator, kw: dict, bad: dict, rate: float = 0.2) -> dict:
    """``kw`` with one value replaced by an invalid one from ``bad`` at ``rate``."""
    if rng.random() < rate:
        key = pick(rng, list(bad))
        kw = {**kw, key: pick(rng, bad[key])}
    return kw


def values(rng: np.random.Generator, shape: tuple[int, ...], dtype: type, scale: float = 3.0) -> np.ndarray:
    """Mostly normal values salted with NaN, Inf and huge ones, in ``dtype`` (may overflow to inf)."""
    v = rng.normal(rng.uniform(-6, 2), scale, shape)
    if v.size and rng.random() < 0.5:
        flat = v.reshape(-1)
        flat[rng.integers(0, flat.size, max(1, flat.size // 20))] = rng.choice(SPECIAL)
    with np.errstate(all="ignore"):
        if dtype is object:
            return v.astype(object)
        if np.issubdtype(dtype, np.integer):
            return np.nan_to_num(v, posinf=0, neginf=0).clip(-100, 100).astype(dtype)
        return v.astype(dtype)


def maybe_strided(rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a) if a.ndim > 1 and rng.random() < 0.2 else a


def settings(rng: np.random.Generator) -> dict:
    """Postprocess settings, one of them invalid a fifth of the time."""
    kw = dict(conf_thres=pick(rng, [0.0, 0.001, 0.25, 0.9, 1.0]), iou_thres=pick(rng, [0.0, 0.45, 1.0]),
              max_det=pick(rng, [None, 1, 5, 300]), multi_label=bool(rng.random() < 0.5),
              agnostic=bool(rng.random() < 0.3), classes=pick(rng, [None, None, [0, 2], [], [10**12]]),
              mode=pick(rng, ["yolov5", "mindx"]), obj_thres=pick(rng, [None, None, 0.1, 0.99]),
              num_threads=pick(rng, [1, 1, 2, 3, 64, 10**12]))
    return corrupt(rng, kw, dict(conf_thres=[-0.1, 1.5, float("nan")], iou_thres=[2.0, -1.0], max_det=[0, -3],
                                 classes=[[1.5], "a"], mode=["ssd"], obj_thres=[2.0], num_threads=[0, -3]))


def heads_case(rng: np.random.Generator) -> Callable[[], object]:
    nl, na, no = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(6, 10))
    batch = int(rng.integers(0 if rng.random() < 0.03 else 1, 4))
    if rng.random() < 0.03:
        no = int(rng.integers(1, 6))
    head_dtype = dtype(rng, pick(rng, [np.float32, np.float16]), rate=0.05)
    heads = []
    for _ in range(nl):
        ny, nx = int(rng.integers(0 if rng.random() < 0.03 else 1, 6)), int(rng.integers(1, 6))
        h = values(rng, (batch, na, ny, nx, no), head_dtype)
        if rng.random() < 0.4:
            h = np.ascontiguousarray(h.transpose(0, 1, 4, 2, 3).reshape(batch, na * no, ny, nx))
        if rng.random() < 0.02:
            h = h.reshape(-1)  # wrong rank
        heads.append(maybe_strided(rng, h))
    anchors = rng.uniform(1, 400, (nl + (rng.random() < 0.03), na, 2))
    if rng.random() < 0.03:
        anchors[0, 0, 0] = pick(rng, [0.0, -1.0, np.nan])
    strides = [float(pick(rng, [8, 16, 32, 64])) for _ in range(nl)]
    if rng.random() < 0.03:
        strides[0] = pick(rng, [0.0, -8.0, float("inf")])
    kw = settings(rng)
    if rng.random() < 0.3:
        kw = {k: kw[k] for k in ("conf_thres", "multi_label", "mode", "obj_thres")}
        return lambda: core.decode(heads, anchors, strides, **kw)
    return lambda: core.postprocess(heads, anchors, strides, **kw)


def decoded_case(rng: np.random.Generator) -> Callable[[], object]:
    shape = (int(rng.integers(0 if rng.random() < 0.03 else 1, 4)), int(rng.integers(1, 60)),
             int(rng.integers(6, 10)))
    pred_dtype = dtype(rng, pick(rng, [np.float32, np.float16]), rate=0.05)
    pred = values(rng, shape, pred_dtype, scale=200.0)
    if pred_dtype in (np.float32, np.float16) and rng.random() < 0.9:  # mostly probabilities after xywh
        pred[..., 4:] = rng.uniform(0, 1, pred[..., 4:].shape) ** rng.uniform(0.2, 4)
        if rng.random() < 0.1 and pred.size:
            pred[rng.integers(0, shape[0]), rng.integers(0, shape[1]), 4] = pick(rng, [np.nan, 1.5, -0.2])
    pred, kw = maybe_strided(rng, pred), settings(rng)
    return lambda: core.postprocess_decoded(pred, **kw)


def nms_case(rng: np.random.Generator) -> Callable[[], object]:
    n = int(rng.integers(0, 80))
    xy = rng.uniform(-50, 500, (n, 2))
    boxes = maybe_strided(rng, np.concatenate([xy, xy + rng.uniform(-5, 200, (n, 2))], axis=1).astype(dtype(rng)))
    scores = values(rng, (n + (rng.random() < 0.02),), dtype(rng))
    classes = pick(rng, [rng.integers(0, 4, n), rng.integers(0, 4, n).astype(np.float32),
                         rng.integers(0, 4, n).astype(np.uint64), rng.integers(0, 2, n).astype(bool),
                         rng.normal(0, 1e20, n) if rng.random() < 0.2 else rng.integers(-3, 3, n).astype(np.float16),
                         values(rng, (n,), np.float64) if rng.random() < 0.2 else rng.integers(0, 9, n)])
    kw = corrupt(rng, dict(iou_thres=pick(rng, [0.0, 0.5, 1.0]), max_det=pick(rng, [None, 1, 300]),
                           max_nms=pick(rng, [None, 3, 30000]), agnostic=bool(rng.random() < 0.3)),
                 dict(iou_thres=[-1.0, 1.1], max_det=[0], max_nms=[-1]))
    return lambda: core.nms(boxes, scores, classes, **kw)


def image_case(rng: np.random.Generator) -> Callable[[], object]:
    def image() -> np.ndarray:
        h, w = int(rng.integers(0 if rng.random() < 0.02 else 1, 300)), int(rng.integers(1, 300))
        channels = 3 if rng.random() < 0.97 else pick(rng, [1, 4])
        img = rng.integers(0, 256, (h, w, channels), dtype=np.uint8).astype(dtype(rng, np.uint8, rate=0.03))
        return maybe_strided(rng, img[:, ::-1] if rng.random() < 0.1 else img)

    kw = corrupt(rng, dict(size=pick(rng, [int(rng.integers(1, 400)), (int(rng.integers(1, 400)),
                                                                         int(rng.integers(1, 400)))]),
                           color=pick(rng, [114, 0, (1, 2, 3)]), auto=bool(rng.random() < 0.3),
                           scaleup=bool(rng.random() < 0.7), stride=pick(rng, [32, 32, 7, 1])),
                 dict(size=[0, (-5, 64), (64.5, 64), 64.5, (1, 2, 3)], color=[300, (1, 2), 114.5], stride=[0, -32]))
    if rng.random() < 0.5:
        img = image()
        return lambda: core.letterbox(img, **kw)
    images = [image() for _ in range(int(rng.integers(0 if rng.random() < 0.03 else 1, 4)))]
    fmt = corrupt(rng, dict(dtype=pick(rng, [np.float32, np.float16, np.uint8]), layout=pick(rng, ["NCHW", "NHWC"])),
                  dict(dtype=[np.int32], layout=["CHW"]), rate=0.05)
    return lambda: core.preprocess(images, **kw, **fmt)


def scale_case(rng: np.random.Generator) -> Callable[[], object]:
    dets = values(rng, (int(rng.integers(0, 30)), 6 if rng.random() < 0.97 else 5), dtype(rng), scale=300.0)
    kw = corrupt(rng, dict(ratio=float(rng.uniform(0.01, 4)),
                           pad=(float(rng.uniform(-10, 100)), float(rng.uniform(-10, 100))),
                           orig_shape=(int(rng.integers(1, 2000)), int(rng.integers(1, 2000)))),
                 dict(ratio=[0.0, -1.0, float("inf")], pad=[(0.0, float("nan"))], orig_shape=[(0, 10)]))
    return lambda: core.scale_boxes(dets, **kw)


MAKERS = [heads_case, heads_case, decoded_case, nms_case, image_case, scale_case]


def outcome(call: Callable[[], object]):
    """The call's result, or its exception; anything but TypeError/ValueError naming an argument fails."""
    try:
        return call()
    except (TypeError, ValueError) as exc:
        assert any(name in str(exc) for name in ARGUMENT_NAMES), f"unnamed argument in {type(exc).__name__}: {exc}"
        return exc


def check_result(result: object) -> None:
    arrays = result if isinstance(result, list) else result[:1] if isinstance(result, tuple) else [result]
    for a in arrays:
        assert isinstance(a, np.ndarray)
        if a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 6:
            assert np.isfinite(a).all()


def same(a: object, b: object) -> bool:
    if isinstance(a, Exception) or isinstance(b, Exception):
        return type(a) is type(b) and str(a) == str(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return a == b


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzzed_calls_raise_or_return_the_same_on_both_paths(seed):
    if not _core._set_simd_enabled(True):
        pytest.skip("this build has no SIMD kernels")
    rng = np.random.default_rng(seed)
    errors = 0
    try:
        for case in range(CASES // 2):
            call = pick(rng, MAKERS)(rng)
            _core._set_simd_enabled(True)
            with np.errstate(all="ignore"):
                fast = outcome(call)
                _core._set_simd_enabled(False)
                slow = outcome(call)
            assert same(fast, slow), f"case {case}: SIMD and scalar paths differ"
            errors += isinstance(fast, Exception)
            if not isinstance(fast, Exception):
                check_result(fast)
    finally:
        _core._set_simd_enabled(True)
    assert 0.1 * CASES / 2 < errors < 0.9 * CASES / 2  # both outcomes are exercised
