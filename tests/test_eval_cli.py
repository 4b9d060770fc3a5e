"""`ascend-slim eval` on the real VOC2007 test subset with the official yolov5n (the CI accuracy check)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

# Measured with the Ultralytics YOLOv5 v7.0 code itself (../shared/data/README.md).
REFERENCE = {"ap50_voc07": 0.728, "ap50": 0.743, "ap50_95": 0.488}


def cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ascend_slim", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def full_eval(yolov5n_pt: Path, voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval")
    run = cli("eval", "--weights", yolov5n_pt, "--data", voc_root, "--img", 640, "--out", out / "txt_result",
              "--json", out / "results.json", "--plots", out / "plots")
    assert run.returncode == 0, run.stderr
    return out, json.loads((out / "results.json").read_text())


def test_matches_ultralytics_reference(full_eval: tuple[Path, dict]) -> None:
    _, results = full_eval
    assert results["settings"]["conf_thres"] == 0.001 and results["settings"]["iou_thres"] == 0.6
    for metric, reference in REFERENCE.items():
        assert results["metrics"][metric]["mean"] == pytest.approx(reference, abs=0.005), metric


def test_outputs_written(full_eval: tuple[Path, dict]) -> None:
    out, _ = full_eval
    files = sorted((out / "txt_result").glob("det_test_*.txt"))
    assert len(files) == 20
    first = files[0].read_text().splitlines()[0].split()
    assert len(first) == 6 and len(first[0]) == 6  # "<id> <score> <x0> <y0> <x1> <y1>", VOC ids like 000001
    for png in ("pr_curves.png", "class_ap.png"):
        img = cv2.imread(str(out / "plots" / png))
        assert img is not None and img.shape[0] > 100 and img.std() > 5


def test_from_txt_scores_identically(full_eval: tuple[Path, dict], voc_root: Path, tmp_path: Path) -> None:
    out, results = full_eval
    run = cli("eval", "--data", voc_root, "--from-txt", out / "txt_result", "--json", tmp_path / "r.json",
              "--plots", "")
    assert run.returncode == 0, run.stderr
    again = json.loads((tmp_path / "r.json").read_text())
    assert again["metrics"] == results["metrics"]
    assert not list(tmp_path.glob("det_test_*"))  # scoring files never rewrites them


def test_missing_split_is_one_line(voc_root: Path, tmp_path: Path) -> None:
    run = cli("eval", "--data", voc_root, "--split", "nosuchsplit", "--from-txt", tmp_path)
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "nosuchsplit" in run.stderr


def test_model_without_voc_classes_is_refused(voc_root: Path, tmp_path: Path) -> None:
    from ascend_slim.export import export_onnx
    from ascend_slim.model import YOLOv5

    model = YOLOv5.from_yaml("yolov5n", names=["cable", "insulator", "bird nest"])
    onnx_path = export_onnx(model, tmp_path / "custom.onnx", img_size=320)
    run = cli("eval", "--weights", onnx_path, "--data", voc_root, "--out", tmp_path / "txt")
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "'aeroplane'" in run.stderr
    assert not (tmp_path / "txt").exists()


def test_unusable_output_fails_before_any_work(voc_root: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = cli("eval", "--weights", yolov5n_pt, "--data", voc_root, "--json", blocker / "r.json")
    assert run.returncode == 1
    expected = f"ascend-slim eval: error: --json folder {blocker} cannot be created: {blocker} is a file"
    assert run.stderr.strip() == expected
