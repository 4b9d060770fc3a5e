"""The slim recipe end to end on 8 images at 160 px (1 + 1 epochs): every stage runs, a kill between stages is
resumed without redoing finished stages, and the result reloads, exports and detects; finetuning a pruned
checkpoint through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from train_helpers import voc_subset

from ascend_slim.cli import main
from ascend_slim.detector import Detector
from ascend_slim.errors import AscendSlimError
from ascend_slim.model.checkpoint import load_weights, save_checkpoint
from ascend_slim.prune import prune_channels
from ascend_slim.recipes import slim as recipe
from ascend_slim.recipes.slim import STAGES, SlimConfig, slim


@pytest.fixture(scope="module")
def voc8(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_subset(tmp_path_factory.mktemp("voc8"), voc_root, 8)


def _config(voc8: Path, yolov5n_pt: Path, save_dir: Path, **overrides) -> SlimConfig:
    options = dict(weights=str(yolov5n_pt), classes="voc", data=str(voc8), train_split="subset", val_split="subset",
                   percent=0.05, round_to=8, sparsity_epochs=1, sparsity_rate=1e-2, finetune_epochs=1, distill=True,
                   img_size=160, batch_size=4, workers=0, latency_runs=2, save_dir=str(save_dir))
    options.update(overrides)
    return SlimConfig(**options)


def test_slim_runs_resumes_after_a_kill_and_its_result_deploys(voc8: Path, yolov5n_pt: Path, images_dir: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(voc8, yolov5n_pt, tmp_path / "run", deploy=str(tmp_path / "bundle"))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after finetuning, before the export stage

    monkeypatch.setattr(recipe, "_export_stage", killed)
    with pytest.raises(KeyboardInterrupt):
        slim(config)
    state = json.loads((tmp_path / "run" / "slim.json").read_text())
    assert list(state["stages"]) == ["sparsity", "prune", "finetune"]
    finetuned = tmp_path / "run" / "finetune" / "weights" / "last.pt"
    stamp = finetuned.stat().st_mtime_ns
    monkeypatch.undo()

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    for stage in ("_sparsity_stage", "_prune_stage", "_train"):
        monkeypatch.setattr(recipe, stage, must_not_run)
    run = slim(SlimConfig(weights="", data="", save_dir=str(tmp_path / "run")), resume=True)
    assert list(run.stages) == list(STAGES)
    assert finetuned.stat().st_mtime_ns == stamp
    assert all(r.seconds >= 0 and r.cpu_seconds >= 0 for r in run.stages.values())

    folder = tmp_path / "run"
    for name in ("final.pt", "final.onnx", "pruned.pt", "prune.json", "eval.json", "report.md", "report.json",
                 "report.png", "sparsity/sparsity/gamma_histograms.png"):
        assert (folder / name).is_file(), name
    report = json.loads((folder / "report.json").read_text())
    assert report["map"]["ap50_voc07"]["original"] > 0.3
    assert report["latency"]["1 thread"]["original_ms"] > 0
    assert report["prune"]["params"][1] < report["prune"]["params"][0]
    assert "| mAP@0.5 (VOC07) |" in (folder / "report.md").read_text()

    # final.pt: the finetuned, pruned architecture; reloads with weights_only; final.onnx is static and detects
    final, info = load_weights(folder / "final.pt")
    pruned, _ = load_weights(folder / "pruned.pt")
    assert final.spec == pruned.spec and info["img_size"] == 160
    torch.load(folder / "final.pt", weights_only=True)
    graph = onnx.load(str(folder / "final.onnx")).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, 160, 160]
    assert [o.name for o in graph.output] == ["head0", "head1", "head2"]
    image = cv2.imread(str(images_dir / "bus.jpg"))
    with Detector(folder / "final.onnx", conf_thres=0.001) as detector:
        detections = detector.predict(image)
    assert len(detections) > 0 and np.isfinite(detections.to_array()).all()
    assert set(detections.labels) <= set(final.names)
    assert (tmp_path / "bundle" / "README.txt").is_file()

    with pytest.raises(AscendSlimError, match="already holds a slim run"):
        slim(_config(voc8, yolov5n_pt, folder))


def test_slim_cli_and_bad_settings(voc8: Path, yolov5n_pt: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(AscendSlimError, match="exactly one"):
        _config(voc8, yolov5n_pt, tmp_path / "x", percent=None).check()
    with pytest.raises(AscendSlimError, match="not found"):
        _config(voc8, yolov5n_pt, tmp_path / "x", weights=str(tmp_path / "none.pt")).check()
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "keep.txt").write_text("mine")
    with pytest.raises(AscendSlimError, match="not empty"):
        _config(voc8, yolov5n_pt, tmp_path / "x", deploy=str(tmp_path / "bundle")).check()
    assert main(["slim", "--weights", str(yolov5n_pt), "--data", str(voc8)]) != 0
    assert "--percent or --target-latency" in capsys.readouterr().err
    assert main(["slim", "--resume", str(tmp_path / "nothing")]) != 0
    assert "no slim run to resume" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_finetune_reloads_a_pruned_checkpoint(voc8: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    model, _ = load_weights(yolov5n_pt)
    from ascend_slim.classes import VOC_CLASSES
    from ascend_slim.model.remap import remap_classes

    pruned = prune_channels(remap_classes(model, VOC_CLASSES).eval(), percent=0.2, round_to=8, img_size=160).model
    source = save_checkpoint(tmp_path / "pruned.pt", pruned, img_size=160)
    code = main(["finetune", "--weights", str(source), "--data", str(voc8), "--train-split", "subset",
                 "--val-split", "subset", "--epochs", "1", "--batch-size", "4", "--img", "160", "--workers", "0",
                 "--device", "cpu", "--project", str(tmp_path / "runs"), "--name", "ft", "--noval"])
    assert code == 0
    tuned, info = load_weights(tmp_path / "runs" / "ft" / "weights" / "last.pt")
    assert tuned.spec == pruned.spec
    assert info["history"][-1]["action"] == "train" and any(h["action"] == "prune" for h in info["history"])
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, pruned.state_dict()[k])]
    assert changed
    save_checkpoint(tmp_path / "again.pt", tuned, img_size=160)
    again, _ = load_weights(tmp_path / "again.pt")
    for k, v in again.state_dict().items():
        assert torch.equal(v, tuned.state_dict()[k])
