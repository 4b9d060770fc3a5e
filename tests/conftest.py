"""Shared fixtures: the real data set beside the repository (override with ASCEND_SLIM_DATA)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Keep the ONNX export cache of `.pt` weights out of the user's home during tests.
os.environ.setdefault("ASCEND_SLIM_CACHE", tempfile.mkdtemp(prefix="ascend-slim-test-cache-"))

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("ASCEND_SLIM_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"shared test data missing: {path} (set ASCEND_SLIM_DATA to the shared/data folder)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _require(DATA_DIR)


@pytest.fixture(scope="session")
def images_dir(data_dir: Path) -> Path:
    return _require(data_dir / "images")


@pytest.fixture(scope="session")
def voc_root(data_dir: Path) -> Path:
    return _require(data_dir / "VOCdevkit")


@pytest.fixture(scope="session")
def yolov5n_pt(data_dir: Path) -> Path:
    return _require(data_dir / "weights" / "yolov5n.pt")


@pytest.fixture(scope="session")
def yolov5n_onnx(yolov5n_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official yolov5n exported once per session (raw head, dynamic size, 640 nominal)."""
    from ascend_slim.export import export_onnx
    from ascend_slim.model.checkpoint import load_weights

    model, _ = load_weights(yolov5n_pt)
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "yolov5n.onnx", img_size=640, dynamic=True)
