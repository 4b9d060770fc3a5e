"""Reading images and expanding ``--source`` arguments (file, folder, glob, image-set list)."""

from __future__ import annotations

import glob
from pathlib import Path

import cv2
import numpy as np

from .errors import AscendSlimError
from .fileio import atomic_write_bytes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into a BGR uint8 ``HxWx3`` array (grey and alpha images are converted)."""
    path = Path(path)
    if not path.is_file():
        raise AscendSlimError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise AscendSlimError(f"cannot decode image {path}: the file is empty, truncated or not an image")
    return img


def read_image_set(path: str | Path) -> list[str]:
    """Image ids, one per line, from a VOC-style image-set file (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise AscendSlimError(f"image-set file not found: {path}")
    ids = [line.split()[0] for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
           if line.strip()]
    if not ids:
        raise AscendSlimError(f"image-set file {path} lists no images")
    return ids


def list_sources(source: str | Path, image_set: str | Path | None = None, suffix: str = ".jpg") -> list[Path]:
    """Expand a source into image paths.

    ``source`` is an image file, a folder (all images in it, sorted) or a glob pattern. With ``image_set``,
    ``source`` must be a folder and the result is ``<source>/<id><suffix>`` for every listed id.
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
        paths = sorted(p for p in source_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise AscendSlimError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {source_path}")
        return paths
    matches = sorted(Path(p) for p in glob.glob(str(source), recursive=True)
                     if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    if not matches:
        raise AscendSlimError(f"source not found: {source} is not an image, a folder or a matching glob")
    return matches


def write_image(path: str | Path, img: np.ndarray) -> None:
    """Encode and write an image atomically (the encoder is chosen by the file suffix)."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".jpg", img)
    if not ok:
        raise AscendSlimError(f"cannot encode image for {path}")
    atomic_write_bytes(path, buf.tobytes())
