"""Reading images and expanding ``--source`` arguments (file, folder, glob, image-set list)."""

from __future__ import annotations

import glob
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from .errors import AscendSlimError
from .fileio import atomic_write_bytes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Larger images are refused from their header, before decoding (a 10000x10000 image decodes to 300 MB).
MAX_IMAGE_PIXELS = 100_000_000

_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0..SOF15 but DHT, JPG, DAC


class ImageReadError(AscendSlimError):
    """An image file that cannot be read (missing, too large, undecodable); ``path`` names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(reason)
        self.path = Path(path)


def _u16(b: bytes, order: str = "big") -> int:
    return int.from_bytes(b[:2], order)


def _u32(b: bytes, order: str = "big") -> int:
    return int.from_bytes(b[:4], order)


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    """(height, width) of the first frame header, walking the marker segments from the start."""
    f.seek(2)
    while True:
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        code = marker[1]
        while code == 0xFF:  # fill bytes
            byte = f.read(1)
            if not byte:
                return None
            code = byte[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:  # markers without a length
            continue
        if code in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        length = _u16(f.read(2))
        if code in _JPEG_FRAME_MARKERS:
            frame = f.read(5)
            return (_u16(frame[1:3]), _u16(frame[3:5])) if len(frame) == 5 else None
        if length < 2:
            return None
        f.seek(length - 2, 1)


def _tiff_size(f: BinaryIO, order: str) -> tuple[int, int] | None:
    """(height, width) from the first image file directory (tags 257 and 256)."""
    f.seek(4)
    f.seek(_u32(f.read(4), order))
    count = _u16(f.read(2), order)
    size: dict[int, int] = {}
    for _ in range(min(count, 4096)):
        entry = f.read(12)
        if len(entry) < 12:
            break
        tag, kind = _u16(entry[0:2], order), _u16(entry[2:4], order)
        if tag in (256, 257) and kind in (3, 4):
            size[tag] = _u16(entry[8:10], order) if kind == 3 else _u32(entry[8:12], order)
    return (size[257], size[256]) if len(size) == 2 else None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        return _u16(head[28:30], "little") & 0x3FFF, _u16(head[26:28], "little") & 0x3FFF
    if chunk == b"VP8L" and head[20] == 0x2F:
        bits = _u32(head[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[27:30], "little") + 1, int.from_bytes(head[24:27], "little") + 1
    return None


def image_size(f: BinaryIO) -> tuple[int, int] | None:
    """``(height, width)`` from the header of a PNG, JPEG, BMP, WebP or TIFF file object, without decoding;
    None for other formats and for headers too short or malformed to say."""
    head = f.read(32)
    size = None
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        size = _u32(head[20:24]), _u32(head[16:20])
    elif head.startswith(b"\xff\xd8"):
        size = _jpeg_size(f)
    elif head.startswith(b"BM") and len(head) >= 26:
        if _u32(head[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER
            size = _u16(head[20:22], "little"), _u16(head[18:20], "little")
        else:  # a negative height means rows stored top-down
            size = abs(int.from_bytes(head[22:26], "little", signed=True)), _u32(head[18:22], "little")
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP" and len(head) >= 30:
        size = _webp_size(head)
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        size = _tiff_size(f, "little" if head[:2] == b"II" else "big")
    return size if size and size[0] > 0 and size[1] > 0 else None


def read_image_size(path: str | Path) -> tuple[int, int] | None:
    """:func:`image_size` of an image file (reads only its header); None also when the file cannot be read."""
    try:
        with open(path, "rb") as f:
            return image_size(f)
    except OSError:
        return None


def check_image_pixels(size: tuple[int, int] | None, path: str | Path) -> None:
    """Refuse an image whose header says it has more than :data:`MAX_IMAGE_PIXELS` pixels."""
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ImageReadError(path, f"image {path} is {size[1]}x{size[0]} pixels, above the limit of "
                              f"{MAX_IMAGE_PIXELS:,} (checked before decoding): downscale it first")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into a BGR uint8 ``HxWx3`` array (grey and alpha images are converted); raises
    :class:`ImageReadError` for a file that is missing, too large or not decodable.

    Images above :data:`MAX_IMAGE_PIXELS` pixels are refused from their header (PNG, JPEG, BMP, WebP, TIFF)
    before any decoding; other formats are left to OpenCV's own limit.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, f"image not found: {path}")
    check_image_pixels(read_image_size(path), path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(path, f"cannot read image {path}: {exc.strerror or exc}") from None
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise ImageReadError(path, f"cannot decode image {path}: {reason}") from None
    if img is None:
        raise ImageReadError(path, f"cannot decode image {path}: the file is empty, truncated or not an image")
    return img


def read_image_set(path: str | Path) -> list[str]:
    """Image ids, one per line, from a VOC-style image-set file (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise AscendSlimError(f"image-set file not found: {path}")
    text = path.read_text(encoding="utf-8-sig", errors="replace")  # -sig: a leading byte-order mark is dropped
    ids = [line.split()[0] for line in text.splitlines() if line.strip()]
    if not ids:
        raise AscendSlimError(f"image-set file {path} lists no images")
    return ids


def list_sources(source: str | Path, image_set: str | Path | None = None, suffix: str = ".jpg") -> list[Path]:
    """Expand a source into image paths.

    ``source`` is an image file, a folder (all images in it, sorted) or a glob pattern. With ``image_set``,
    ``source`` must be a folder and the result is ``<source>/<id><suffix>`` for every listed id. A folder with an
    image's name (``sub.jpg/``) is not an image: it is left out with a note on stderr.
    """
    source_path = Path(source)
    if image_set is not None:
        if not source_path.is_dir():
            raise AscendSlimError(f"image folder not found: {source_path}")
        paths = [source_path / f"{image_id}{suffix}" for image_id in read_image_set(image_set)]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise AscendSlimError(
                f"{len(missing)} image(s) listed in {image_set} are missing from {source_path}, "
                f"first: {missing[0].name}"
            )
        return paths
    if source_path.is_file():
        return [source_path]
    if source_path.is_dir():
        paths = _files_only(sorted(p for p in source_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not paths:
            raise AscendSlimError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {source_path}")
        return paths
    matches = _files_only(sorted(Path(p) for p in glob.glob(str(source), recursive=True)
                                 if Path(p).suffix.lower() in IMAGE_SUFFIXES))
    if not matches:
        raise AscendSlimError(f"source not found: {source} is not an image, a folder or a matching glob")
    return matches


def _files_only(paths: list[Path]) -> list[Path]:
    """``paths`` without folders (and other non-files), which are named in a note on stderr."""
    others = [p for p in paths if not p.is_file()]
    if others:
        print(f"note: skipped {len(others)} entr{'y' if len(others) == 1 else 'ies'} named like an image but not a "
              f"file (first: {others[0]})", file=sys.stderr)
    return [p for p in paths if p.is_file()]


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """One distinct output name per path, in order: its stem, or ``<stem>_2``, ``<stem>_3``, ... when an earlier
    path already took it (``x.jpg`` and ``x.png`` in one folder, an id listed twice)."""
    taken: set[str] = set()
    names = []
    for path in paths:
        name, n = path.stem, 1
        while name in taken:
            n += 1
            name = f"{path.stem}_{n}"
        taken.add(name)
        names.append(name)
    return names


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Encode and write an image atomically (the encoder is chosen by the file suffix)."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".jpg", img)
    if not ok:
        raise AscendSlimError(f"cannot encode image for {path}")
    atomic_write_bytes(path, buf.tobytes())
