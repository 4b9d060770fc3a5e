"""Terminal table, results.json and PNG plots of an evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ascend_slim.data.voc import Annotation
from ascend_slim.evaluation.metrics import score_detections
from ascend_slim.evaluation.plots import plot_class_ap, plot_pr_curves
from ascend_slim.evaluation.report import format_table, write_json

NAMES = ("cat", "dog", "horse")


@pytest.fixture(scope="module")
def result():
    # cat: TP then FP -> AP 1; dog: FP then TP -> 1/2; horse: detections but no ground truth
    gt = Annotation(np.array([[1.0, 1, 10, 10], [21, 21, 30, 30]]), np.array([0, 1]), np.zeros(2, bool), 50, 50)
    dets = np.array([[0, 0, 9, 9, 0.9, 0], [40, 40, 45, 45, 0.8, 0], [40, 40, 45, 45, 0.7, 1],
                     [20, 20, 29, 29, 0.6, 1], [0, 0, 9, 9, 0.5, 2]])
    return score_detections({"A": dets, "elsewhere": dets[:1]}, {"A": gt}, NAMES)


def test_table(result):
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].split() == ["class", "GT", "dets", "AP50-07", "AP50", "AP55-smp", "AP50:95"]
    assert lines[1].split() == ["cat", "1", "2", "1.000", "1.000", "1.000", "1.000"]
    assert lines[2].split() == ["dog", "1", "2", "0.500", "0.500", "0.500", "0.500"]
    assert lines[3].split() == ["horse", "0", "1", "-", "-", "-", "-"]
    assert lines[5].split() == ["mean", "2", "5", "0.750", "0.750", "0.750", "0.750"]
    assert "Ascend sample's metric" in table and "(excluded from the means): horse" in table
    assert "1 detections on images outside" in table


def test_json(tmp_path: Path, result):
    path = write_json(tmp_path / "out" / "results.json", result, {"settings": {"img": 640}})
    data = json.loads(path.read_text())
    assert data["settings"] == {"img": 640}
    assert data["metrics"]["ap50"]["mean"] == pytest.approx(0.75)
    assert data["metrics"]["ap55_sample"]["label"].startswith("AP@0.55")
    assert [c["name"] for c in data["classes"]] == list(NAMES)
    assert data["classes"][2]["ap50_95"] is None and data["classes_without_gt"] == ["horse"]
    assert data["num_images"] == 1 and data["ignored_detections"] == 1
    with pytest.raises(ValueError, match="overwrite"):
        write_json(tmp_path / "x.json", result, {"classes": []})


@pytest.mark.parametrize("plot", [plot_pr_curves, plot_class_ap])
def test_plots_are_pngs_of_the_requested_size(tmp_path: Path, result, plot):
    path = plot(result, tmp_path / "plots" / "plot.png", size=(800, 500))
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (500, 800, 3)
    assert img.std() > 10  # something is drawn, not a blank canvas
    assert not list(path.parent.glob(".*tmp"))
    assert cv2.imread(str(plot(result, tmp_path / "default.png"))).shape == (600, 1000, 3)

