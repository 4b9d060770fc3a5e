"""Image headers read without decoding, the pixel bound, image-set files and output names."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from ascend_slim.imageio import (
    MAX_IMAGE_PIXELS,
    ImageReadError,
    image_size,
    read_image,
    read_image_set,
    read_image_size,
    unique_stems,
)

IMG = np.random.default_rng(0).integers(0, 256, (37, 53, 3), np.uint8)
FORMATS = [(".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".bmp", []),
           (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".tiff", [])]


@pytest.mark.parametrize(("ext", "params"), FORMATS, ids=lambda v: str(v))
@pytest.mark.parametrize("channels", [3, 1])
def test_header_size_matches_the_decoded_image(ext, params, channels):
    img = IMG if channels == 3 else IMG[:, :, 0]
    ok, buf = cv2.imencode(ext, img, params)
    assert ok
    assert image_size(io.BytesIO(buf.tobytes())) == cv2.imdecode(buf, cv2.IMREAD_COLOR).shape[:2] == (37, 53)


def test_header_size_of_real_photos(images_dir: Path, voc_root: Path):
    for path in [*images_dir.glob("*.jpg"), *sorted((voc_root / "VOC2007" / "JPEGImages").glob("*.jpg"))[:50]]:
        assert read_image_size(path) == cv2.imread(str(path)).shape[:2]


@pytest.mark.parametrize("data", [b"", b"hello", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"BM",
                                  b"II*\x00\xff\xff\xff\xff", b"RIFF\x00\x00\x00\x00WEBPVP8X"])
def test_unknown_or_short_headers_say_nothing(data):
    assert image_size(io.BytesIO(data)) is None


def test_images_above_the_bound_are_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    side = int(MAX_IMAGE_PIXELS**0.5) + 1
    _, buf = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:24] = side.to_bytes(4, "big") * 2  # IHDR width and height
    path = tmp_path / "big.png"
    path.write_bytes(bytes(data))
    def never_decode(*args: object) -> None:
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(cv2, "imdecode", never_decode)  # refused from the header: no decoding, so no timing
    with pytest.raises(ImageReadError, match=f"{side}x{side} pixels, above the limit") as info:
        read_image(path)
    assert info.value.path == path


def test_image_set_strips_a_byte_order_mark(tmp_path: Path):
    path = tmp_path / "list.txt"
    path.write_text("\ufeff000001\r\n\n000002 1\n", encoding="utf-8")
    assert read_image_set(path) == ["000001", "000002"]


def test_unique_stems_keep_every_output():
    paths = [Path("a/x.jpg"), Path("a/x.png"), Path("b/x.jpg"), Path("a/x_2.jpg"), Path("a/y.jpg"), Path("a/x.jpg")]
    assert unique_stems(paths) == ["x", "x_2", "x_3", "x_2_2", "y", "x_4"]
