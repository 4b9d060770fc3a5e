"""AIPP emulation: NV12 from a letterboxed image through the written AIPP config equals the project's RGB/255
preprocess of the same image, within the rounding of the 8.8 fixed-point CSC and the 4:2:0 chroma subsampling.

Error model (levels of 255), per pixel and channel c, with v = (Y, Cb-128, Cr-128) at full chroma resolution,
v' the same with the 2x2-averaged chroma DVPP delivers, M the preset matrix / 256:
    |AIPP - RGB| <= E_lin[c] + 1 + |(M (v' - v))[c]|
E_lin = max over all 2^24 colours of |M v - RGB| (YCbCr rounding + fixed-point coefficients, measured
exhaustively below), 1 = the floor of ``>> 8``; saturation to 0..255 only moves values towards RGB.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ascend_slim import core
from ascend_slim.ascend.aipp import JPEG_YUV2RGB_MATRIX, AippConfig, apply_aipp, rgb_to_nv12, yolov5_aipp
from ascend_slim.errors import AscendSlimError
from ascend_slim.imageio import read_image

SIZE = 512
MATRIX = np.asarray(JPEG_YUV2RGB_MATRIX, np.float64).reshape(3, 3) / 256
VOC_IDS = ("000001", "000004", "000009", "000026")


def _ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Full-range Y, Cb-128, Cr-128 (int) of an RGB uint8 image."""
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.int64)
    return np.stack([ycc[..., 0], ycc[..., 2] - 128, ycc[..., 1] - 128], axis=-1)


@pytest.fixture(scope="module")
def lin_error() -> np.ndarray:
    """E_lin per channel over all 2^24 RGB colours."""
    g, b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    worst = np.zeros(3)
    for r in range(256):
        rgb = np.stack([np.full_like(g, r), g, b], axis=-1).astype(np.uint8)
        worst = np.maximum(worst, np.abs(_ycbcr(rgb) @ MATRIX.T - rgb).reshape(-1, 3).max(axis=0))
    return worst


def test_fixed_point_error_without_subsampling(lin_error: np.ndarray) -> None:
    """Colours in 2x2 blocks (so 4:2:0 loses nothing): AIPP is within E_lin + 1 level of RGB."""
    levels = np.arange(0, 256, 5)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    colours = np.stack([r, g, b], axis=-1).reshape(-1, 3).astype(np.uint8)
    side = int(np.ceil(np.sqrt(len(colours))))
    tile = np.zeros((side * side, 3), np.uint8)
    tile[:len(colours)] = colours
    rgb = tile.reshape(side, side, 3).repeat(2, axis=0).repeat(2, axis=1)
    out = apply_aipp(rgb_to_nv12(rgb), AippConfig(width=2 * side, height=2 * side))
    err = np.abs(out * 255 - rgb).reshape(-1, 3).max(axis=0)
    assert np.all(err <= np.floor(lin_error + 1) + 1e-3), (err, lin_error)
    assert np.all(lin_error < 1.5)  # the preset is the exact inverse of full-range YCbCr up to rounding


def _letterboxed(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = read_image(path)
    as_u8, _, _ = core.preprocess(img, (SIZE, SIZE), dtype=np.uint8, layout="NHWC")
    as_f32, _, _ = core.preprocess(img, (SIZE, SIZE), dtype=np.float32, layout="NCHW")
    return as_u8[0], as_f32[0].transpose(1, 2, 0)


def _photos(images_dir: Path, voc_root: Path) -> list[Path]:
    return [images_dir / "bus.jpg", images_dir / "zidane.jpg",
            *(voc_root / "VOC2007" / "JPEGImages" / f"{i}.jpg" for i in VOC_IDS)]


def test_aipp_matches_rgb_preprocess_on_photos(images_dir: Path, voc_root: Path, lin_error: np.ndarray) -> None:
    cfg = yolov5_aipp(SIZE, SIZE)
    means = []
    for path in _photos(images_dir, voc_root):
        rgb, reference = _letterboxed(path)
        np.testing.assert_allclose(rgb / np.float32(255), reference, atol=1e-6)  # one letterboxed image
        nv12 = rgb_to_nv12(rgb)
        err = np.abs(apply_aipp(nv12, cfg) - reference) * 255
        chroma = nv12[SIZE:].reshape(SIZE // 2, SIZE // 2, 2).repeat(2, axis=0).repeat(2, axis=1) - 128
        subsampled = np.concatenate([_ycbcr(rgb)[..., :1], chroma.astype(np.int64)], axis=-1)
        bound = lin_error + 1 + np.abs((subsampled - _ycbcr(rgb)) @ MATRIX.T)
        assert np.all(err <= bound + 1e-3), (path.name, float((err - bound).max()))
        means.append(err.mean())
    assert max(means) < 2.0, means  # large errors only where chroma changes inside a 2x2 block


def test_aipp_is_exact_on_grey_images(images_dir: Path, voc_root: Path) -> None:
    cfg = yolov5_aipp(SIZE, SIZE)
    for path in _photos(images_dir, voc_root)[:3]:
        grey = cv2.cvtColor(cv2.cvtColor(read_image(path), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        as_u8, _, _ = core.preprocess(grey, (SIZE, SIZE), dtype=np.uint8, layout="NHWC")
        as_f32, _, _ = core.preprocess(grey, (SIZE, SIZE), dtype=np.float32, layout="NCHW")
        out = apply_aipp(rgb_to_nv12(as_u8[0]), cfg)
        assert np.abs(out - as_f32[0].transpose(1, 2, 0)).max() <= 1e-6


def test_video_range_preset_would_be_wrong(images_dir: Path, lin_error: np.ndarray) -> None:
    """The BT.601 video preset (for camera frames) does not reproduce RGB from a JPEG decode: the check above
    would catch a config with the wrong preset."""
    rgb, reference = _letterboxed(images_dir / "bus.jpg")
    video = AippConfig(width=SIZE, height=SIZE, matrix=(298, 0, 409, 298, -100, -208, 298, 516, 0),
                       input_bias=(16, 128, 128))
    err = np.abs(apply_aipp(rgb_to_nv12(rgb), video) - reference) * 255
    assert err.mean() > 5 and err.max() > 30


def test_nv12_layout_and_errors() -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:2, :2] = (255, 0, 0)  # one red 2x2 block
    nv12 = rgb_to_nv12(rgb)
    assert nv12.shape == (6, 6)
    y, cb, cr = _ycbcr(rgb[:1, :1])[0, 0] + (0, 128, 128)
    assert nv12[0, 0] == y and tuple(nv12[4, :2]) == (cb, cr)  # U (Cb) first, then V (Cr)
    assert tuple(nv12[4, 2:4]) == (128, 128)
    with pytest.raises(AscendSlimError, match="even"):
        rgb_to_nv12(np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(AscendSlimError, match="NV12 input must be"):
        apply_aipp(nv12, yolov5_aipp(8, 8))
    swapped = apply_aipp(nv12, AippConfig(width=6, height=4, rbuv_swap_switch=True))
    assert swapped[0, 0].argmax() == 2  # U/V swapped: red turns blue
