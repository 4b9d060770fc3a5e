"""Augmentations keep boxes and pixels consistent, reduce to the identity at zero settings, and are seeded."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ascend_slim.data.augment import (
    AUGMENT_HYP,
    PAD_VALUE,
    augment_hsv,
    augment_hyp,
    box_candidates,
    fliplr,
    flipud,
    mixup,
    mosaic,
    random_perspective,
    resize_long_side,
    xywhn_to_xyxy,
    xyxy_to_xywhn,
)
from ascend_slim.errors import AscendSlimError


def _scene(h: int, w: int, box: tuple[int, int, int, int], color=(255, 255, 255)) -> np.ndarray:
    """A grey image with one filled rectangle ``box`` (x1, y1, x2, y2 exclusive)."""
    img = np.full((h, w, 3), 60, dtype=np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = color
    return img


def _bbox_of(img: np.ndarray, color) -> np.ndarray:
    """x1, y1, x2 (exclusive), y2 of the pixels that are close to ``color``."""
    ys, xs = np.nonzero((np.abs(img.astype(int) - color) < 40).all(axis=2))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


def test_box_conversions_round_trip():
    labels = np.array([[3, 0.5, 0.25, 0.2, 0.1], [0, 0.1, 0.8, 0.2, 0.2]], dtype=np.float32)
    xyxy = xywhn_to_xyxy(labels, 200, 100, padw=10, padh=20)
    np.testing.assert_allclose(xyxy[0], [3, 90, 40, 130, 50])
    np.testing.assert_allclose(xyxy_to_xywhn(xyxy - [0, 10, 20, 10, 20], 200, 100), labels, atol=1e-6)
    clipped = xyxy_to_xywhn(np.array([[1, -5, -5, 50, 250]]), 100, 200)  # clipped to [0, w - 1e-3]
    np.testing.assert_allclose(clipped, [[1, 0.25, (200 - 1e-3) / 2 / 200, 0.5, (200 - 1e-3) / 200]], rtol=1e-6)


def test_flips_map_boxes_exactly():
    img = _scene(60, 100, (10, 5, 30, 25))
    labels = xyxy_to_xywhn(np.array([[7, 10, 5, 30, 25]]), 100, 60)
    out, lab = fliplr(img, labels)
    np.testing.assert_array_equal(out, img[:, ::-1])
    np.testing.assert_allclose(_bbox_of(out, 255), xywhn_to_xyxy(lab, 100, 60)[0, 1:])
    out, lab = flipud(img, labels)
    np.testing.assert_array_equal(out, img[::-1])
    np.testing.assert_allclose(_bbox_of(out, 255), xywhn_to_xyxy(lab, 100, 60)[0, 1:])
    assert lab[0, 0] == 7 and labels[0, 2] == pytest.approx(15 / 60)  # input untouched


def test_affine_with_identity_parameters_is_identity():
    img = _scene(64, 96, (10, 5, 30, 25))
    labels = np.array([[2, 10, 5, 30, 25]], dtype=np.float64)
    out, lab = random_perspective(img, labels, np.random.default_rng(0), degrees=0, translate=0, scale=0, shear=0,
                                  perspective=0)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_array_equal(lab, labels)


@pytest.mark.parametrize("params", [
    {"degrees": 0, "translate": 0.2, "scale": 0.5, "shear": 0, "perspective": 0},
    {"degrees": 30, "translate": 0.1, "scale": 0.3, "shear": 8, "perspective": 0},
    {"degrees": 10, "translate": 0.1, "scale": 0.2, "shear": 2, "perspective": 0.0005},
])
def test_warped_boxes_enclose_the_warped_object(params):
    img = _scene(320, 320, (120, 100, 200, 220))
    labels = np.array([[5, 120, 100, 200, 220]], dtype=np.float64)
    for seed in range(5):
        out, lab = random_perspective(img, labels, np.random.default_rng(seed), **params)
        assert out.shape == img.shape
        if len(lab) == 0:  # moved out of the image: must really be (nearly) gone
            assert (np.abs(out.astype(int) - 255) < 40).all(axis=2).sum() < 0.1 * 80 * 120
            continue
        assert lab[0, 0] == 5 and (lab[0, 1:] >= 0).all() and (lab[0, [1, 3]] <= 320).all()
        np.testing.assert_allclose(_bbox_of(out, 255), lab[0, 1:], atol=1.5)


def test_border_crops_a_mosaic_canvas_to_half():
    img = _scene(256, 256, (0, 0, 16, 16))
    out, _ = random_perspective(img, np.zeros((0, 5)), np.random.default_rng(1), degrees=0, translate=0, scale=0,
                                shear=0, border=(-64, -64))
    np.testing.assert_array_equal(out, img[64:192, 64:192])  # the centre 128 x 128 of the canvas


def test_box_candidates_rule():
    before = np.array([[0, 0, 100, 100]] * 5, dtype=float).T
    after = np.array([
        [0, 0, 50, 50],  # kept: area ratio 0.25
        [0, 0, 2, 50],  # width not > 2 px
        [0, 0, 30, 30],  # area ratio 0.09 <= 0.1
        [0, 0, 300, 2.5],  # aspect ratio 120 >= 100
        [0, 0, 40, 3],  # small but valid: 3 px high, ratio 0.012 < 0.1 -> dropped by area
    ], dtype=float).T
    np.testing.assert_array_equal(box_candidates(before, after), [True, False, False, False, False])
    np.testing.assert_array_equal(box_candidates(before, after, area_thr=0.01), [True, False, True, False, True])


def test_mosaic_places_each_object_where_its_box_says():
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    shapes = [(100, 128), (128, 90), (64, 128), (128, 128)]
    images, labels = [], []
    for (h, w), color in zip(shapes, colors):
        box = (w // 4, h // 4, w // 2, h // 2)
        images.append(_scene(h, w, box, color))
        labels.append(xyxy_to_xywhn(np.array([[len(labels), *box]]), w, h))
    for seed in range(8):
        canvas, boxes = mosaic(images, labels, 128, np.random.default_rng(seed))
        assert canvas.shape == (256, 256, 3) and canvas.dtype == np.uint8
        assert (boxes[:, 1:] >= 0).all() and (boxes[:, 1:] <= 256).all()
        assert sorted(boxes[:, 0]) == [0, 1, 2, 3]
        for cls, x1, y1, x2, y2 in boxes:
            if x2 - x1 >= 1 and y2 - y1 >= 1:
                np.testing.assert_allclose(_bbox_of(canvas, colors[int(cls)]), [x1, y1, x2, y2], atol=1e-6)
    with pytest.raises(ValueError, match="exactly 4"):
        mosaic(images[:3], labels[:3], 128, np.random.default_rng(0))


def test_mosaic_centre_range_and_fill():
    tiles = [np.full((64, 64, 3), v, dtype=np.uint8) for v in (10, 20, 30, 40)]
    empty = np.zeros((0, 5), dtype=np.float32)
    centres = set()
    for seed in range(20):
        canvas, boxes = mosaic(tiles, [empty] * 4, 64, np.random.default_rng(seed))
        xc, yc = np.nonzero(canvas[..., 0] == 20)[1].min(), np.nonzero(canvas[..., 0] == 30)[0].min()
        assert 32 <= xc < 96 and 32 <= yc < 96 and len(boxes) == 0
        expected = np.full((128, 128), PAD_VALUE)
        x0, y0, x1, y1 = max(xc - 64, 0), max(yc - 64, 0), min(xc + 64, 128), min(yc + 64, 128)
        expected[y0:yc, x0:xc], expected[y0:yc, xc:x1] = 10, 20  # top left, top right
        expected[yc:y1, x0:xc], expected[yc:y1, xc:x1] = 30, 40  # bottom left, bottom right
        np.testing.assert_array_equal(canvas[..., 0], expected)
        centres.add((xc, yc))
    assert len(centres) > 10  # the centre is drawn, not fixed


def test_hsv_zero_gains_is_identity_and_value_gain_scales_grey():
    img = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    assert augment_hsv(img, np.random.default_rng(0), 0, 0, 0) is img
    grey = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    out = augment_hsv(grey, np.random.default_rng(5), 0, 0, 0.4)
    gain = np.random.default_rng(5).uniform(-1, 1, 3)[2] * 0.4 + 1
    expected = np.clip(np.arange(256) * gain, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, np.repeat(expected[None, :, None], 3, axis=2))
    coloured = augment_hsv(img, np.random.default_rng(1), 0.015, 0.7, 0.4)
    assert coloured.shape == img.shape and not np.array_equal(coloured, img)


def test_mixup_blends_and_joins_labels():
    a, b = np.full((8, 8, 3), 200, np.uint8), np.full((8, 8, 3), 100, np.uint8)
    la, lb = np.ones((2, 5)), np.zeros((1, 5))
    out, labels = mixup(a, la, b, lb, np.random.default_rng(3))
    r = np.random.default_rng(3).beta(32, 32)
    assert (out == round(200 * r + 100 * (1 - r))).all() and len(labels) == 3


def test_resize_long_side():
    img = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    small = resize_long_side(img, 320)
    np.testing.assert_array_equal(small, cv2.resize(img, (320, 240), interpolation=cv2.INTER_LINEAR))
    assert resize_long_side(img, 640).shape == (480, 640, 3)
    assert resize_long_side(img, 500) is img


def test_same_generator_state_same_result():
    img = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    labels = np.array([[1, 20, 20, 90, 100]], dtype=np.float64)
    params = {"degrees": 10, "translate": 0.1, "scale": 0.5, "shear": 3}
    a = random_perspective(img, labels, np.random.default_rng(9), **params)
    b = random_perspective(img, labels, np.random.default_rng(9), **params)
    c = random_perspective(img, labels, np.random.default_rng(10), **params)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_augment_hyp_defaults_and_validation():
    assert augment_hyp() == AUGMENT_HYP and AUGMENT_HYP["mosaic"] == 1.0 and AUGMENT_HYP["hsv_s"] == 0.7
    merged = augment_hyp({"lr0": 0.01, "fliplr": 0, "degrees": 5})
    assert merged["fliplr"] == 0.0 and merged["degrees"] == 5.0 and "lr0" not in merged
    for bad in ({"mosaic": 1.5}, {"scale": -0.1}, {"hsv_h": "x"}, {"mixup": float("nan")}):
        with pytest.raises(AscendSlimError, match=next(iter(bad))):
            augment_hyp(bad)
