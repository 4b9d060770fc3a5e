"""Where model weights come from: user paths, the default download, and the ONNX export cache for ``.pt``."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .errors import AscendSlimError
from .fileio import atomic_write_text, file_sha256
from .meta import as_hw

DEFAULT_WEIGHTS_URL = "https://github.com/ultralytics/yolov5/releases/download/v7.0/yolov5s.pt"
WEIGHTS_ENV = "ASCEND_SLIM_WEIGHTS"
CACHE_ENV = "ASCEND_SLIM_CACHE"
MODEL_SUFFIXES = (".pt", ".onnx", ".xml", ".om")
MAX_CACHED_EXPORTS = 8  # ONNX exports of .pt files kept in the cache; the least recently used go first


def cache_dir() -> Path:
    """The cache folder (``$ASCEND_SLIM_CACHE``, else ``~/.cache/ascend-slim``)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ascend-slim")


def resolve_weights(weights: str | Path | None) -> Path:
    """The model file to use: ``weights``, else ``$ASCEND_SLIM_WEIGHTS``, else the official yolov5s.pt."""
    chosen = weights or os.environ.get(WEIGHTS_ENV)
    if not chosen:
        return download_default_weights()
    path = Path(chosen)
    if not path.is_file():
        raise AscendSlimError(f"weights not found: {path} (pass a .pt, .onnx, .xml or .om file with --weights)")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise AscendSlimError(f"unsupported weights file {path}: expected one of {', '.join(MODEL_SUFFIXES)}")
    return path


def download_default_weights(url: str = DEFAULT_WEIGHTS_URL) -> Path:
    """Download the default checkpoint once into the cache, with a progress bar.

    The SHA-256 of the first complete download is stored beside it and checked on every later use, so a
    truncated or altered cache file is detected (the file is also only ever read by the restricted
    unpickler, which refuses anything that is not a checkpoint).
    """
    target = cache_dir() / "weights" / Path(url).name
    checksum_file = target.with_suffix(target.suffix + ".sha256")
    if target.is_file() and checksum_file.is_file():
        if file_sha256(target) != checksum_file.read_text().split()[0]:
            raise AscendSlimError(f"cached weights {target} fail their checksum: delete the file and retry")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {target.name}") as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        if total is not None and partial.stat().st_size != total:
            raise OSError(f"got {partial.stat().st_size} of {total} bytes")
    except (OSError, urllib.error.URLError) as exc:
        partial.unlink(missing_ok=True)
        raise AscendSlimError(
            f"cannot download default weights from {url} ({exc}); pass a local model with --weights "
            f"or set {WEIGHTS_ENV}=/path/to/yolov5s.pt"
        ) from None
    os.replace(partial, target)
    atomic_write_text(checksum_file, f"{file_sha256(target)}  {target.name}\n")
    return target


def onnx_for_checkpoint(weights: Path, img_size: int | tuple[int, int], batch: int = 1, opset: int = 11,
                        head: str = "raw", dynamic: bool = False) -> Path:
    """An ONNX export of a ``.pt`` checkpoint, cached by content hash and export settings (imports torch).

    The cache keeps the :data:`MAX_CACHED_EXPORTS` most recently used exports (about 7.5 MB each for yolov5n).
    """
    h, w = as_hw(img_size)
    key = f"{file_sha256(weights)[:16]}-{h}x{w}-b{batch}-op{opset}-{head}{'-dynamic' if dynamic else ''}"
    target = cache_dir() / "onnx" / f"{weights.stem}-{key}.onnx"
    if target.is_file():
        os.utime(target)  # most recently used: the last to be evicted
        return target
    from .export import export_onnx
    from .model.checkpoint import load_weights

    model, _ = load_weights(weights)
    export_onnx(model, target, img_size=(h, w), batch=batch, opset=opset, head=head, dynamic=dynamic)
    _evict_exports(target.parent, keep=MAX_CACHED_EXPORTS)
    return target


def _evict_exports(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used exports in ``folder``."""
    def last_used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:  # evicted meanwhile by another process
            return 0.0

    for old in sorted(folder.glob("*.onnx"), key=last_used, reverse=True)[keep:]:
        old.unlink(missing_ok=True)
