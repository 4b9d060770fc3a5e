"""Shared benchmark plumbing: data location, the yolov5n ONNX model, JSON output."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ASCEND_SLIM_DATA", REPO.parent / "shared" / "data")).resolve()
sys.path.insert(0, str(REPO / "tests"))  # the plain numpy reference lives in tests/reference.py


def voc_test_images(limit: int | None = None) -> list[Path]:
    root = DATA / "VOCdevkit" / "VOC2007"
    ids = (root / "ImageSets" / "Main" / "test.txt").read_text().split()
    return [root / "JPEGImages" / f"{i}.jpg" for i in ids[:limit]]


def yolov5n_onnx(img_size: int = 640, dynamic: bool = False) -> Path:
    """Export the shared yolov5n checkpoint once into a temporary cache (imports torch here only)."""
    os.environ.setdefault("ASCEND_SLIM_CACHE", str(Path(tempfile.gettempdir()) / "ascend-slim-bench-cache"))
    from ascend_slim.weights import onnx_for_checkpoint

    return onnx_for_checkpoint(DATA / "weights" / "yolov5n.pt", img_size, dynamic=dynamic)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", help="also write the results to this JSON file")
    return p


def write_json(path: str | None, results: dict) -> None:
    """Write ``results`` with the machine they were measured on (CPU model, cores, SIMD flags)."""
    from ascend_slim.report.machine import cpu_info

    results = {**results, "machine": cpu_info()}
    if path:
        Path(path).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {path}")
