"""Locate files shipped with the package (model yaml, pipeline templates)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_DIR = _PACKAGE_DIR.parent.parent  # python/ascend_slim -> repository root (source checkouts)


def resource_dir(name: str) -> Path:
    """Directory of shipped resources: ``"yolov5"`` (model yaml) or ``"pipeline"``.

    Installed wheels carry them under ``ascend_slim/data/``; source checkouts use the repository folders.
    """
    candidates = [_PACKAGE_DIR / "data" / name]
    candidates.append(_REPO_DIR / ("models/yolov5" if name == "yolov5" else name))
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"ascend-slim resource folder {name!r} not found (looked in {candidates})")
