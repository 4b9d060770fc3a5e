"""One evaluation protocol: ``eval``, ``report`` and the slim recipe's evaluate stage score the same model file on
the same split through ``evaluate_file`` and give byte-identical metrics (4 VOC images at 160 px)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from train_helpers import voc_subset

from ascend_slim.cli import main
from ascend_slim.evaluation import HEADLINE_METRICS, VAL_SETTINGS, evaluate_file, evaluation_set, headline_metrics
from ascend_slim.recipes.slim import SLIM_STAGES, ExportResult, SlimConfig, SlimRun, Stage


@pytest.fixture(scope="module")
def voc4(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_subset(tmp_path_factory.mktemp("voc4"), voc_root, 4, split="test")


def _metrics_json(metrics: dict) -> bytes:
    return json.dumps({key: metrics[key] for key in HEADLINE_METRICS}, indent=2).encode()


def test_eval_report_and_slim_give_identical_metrics(voc4: Path, yolov5n_onnx: Path, yolov5n_pt: Path,
                                                     tmp_path: Path) -> None:
    assert main(["eval", "--weights", str(yolov5n_onnx), "--data", str(voc4), "--split", "subset", "--img", "160",
                 "--json", str(tmp_path / "eval.json"), "--out", str(tmp_path / "txt"), "--plots", ""]) == 0
    written = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    from_eval = _metrics_json({key: written[key]["mean"] for key in HEADLINE_METRICS})

    assert main(["report", "--weights", str(yolov5n_onnx), "--data", str(voc4), "--split", "subset", "--img", "160",
                 "--runs", "1", "--json", str(tmp_path / "report.json")]) == 0
    from_report = _metrics_json(json.loads((tmp_path / "report.json").read_text())["models"][0]["map"])

    def exported(run: SlimRun) -> ExportResult:  # the model file under test stands for both exports
        return ExportResult(final_pt="", final_onnx=str(yolov5n_onnx), original_onnx=str(yolov5n_onnx), img_size=160)

    evaluate = next(s for s in SLIM_STAGES if s.name == "evaluate")
    # the run selects on other images than it is evaluated on (a shared image is refused)
    (voc4 / "VOC2007" / "ImageSets" / "Main" / "pick.txt").write_text("000009\n000012\n")
    config = SlimConfig(weights=str(yolov5n_pt), classes="voc", data=str(voc4), img_size=160, select_split="pick",
                        train=replace(SlimConfig().train, train_split="subset", val_split="subset"),
                        save_dir=str(tmp_path / "slim"))
    run = SlimRun.create(config, [Stage("export", exported, ExportResult), evaluate]).run()
    slim_eval = json.loads((tmp_path / "slim" / "eval.json").read_text())
    assert slim_eval["split"] == "subset" and slim_eval["images"] == 4
    assert run.result("evaluate").img_size == {"original": 160, "final": 160}

    assert from_eval == from_report == _metrics_json(slim_eval["final"]) == _metrics_json(slim_eval["original"])
    assert 0.2 < json.loads(from_eval)["ap50_voc07"] < 1.0  # a real score, not an empty one


def test_evaluate_file_uses_the_protocol_and_its_overrides(voc4: Path, yolov5n_onnx: Path) -> None:
    dataset = evaluation_set(voc4, "subset")
    default = evaluate_file(yolov5n_onnx, dataset, img_size=160, progress=False)
    strict = evaluate_file(yolov5n_onnx, dataset, img_size=160, progress=False, conf_thres=0.5)
    assert VAL_SETTINGS["conf_thres"] == 0.001 and "(onnxruntime, 160x160)" in default.source
    counts = [sum(len(d) for d in e.detections.values()) for e in (default, strict)]
    assert counts[0] > counts[1] > 0  # conf 0.5 keeps fewer boxes than the protocol's 0.001
    assert all(len(d) <= VAL_SETTINGS["max_det"] for d in default.detections.values())
    assert headline_metrics(default.result)["ap50"] >= headline_metrics(strict.result)["ap50"]
