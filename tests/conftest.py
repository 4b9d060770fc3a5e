"""Shared fixtures: the real data set beside the repository (override with ASCEND_SLIM_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
