"""The slim recipe end to end on 8 images at 160 px (1 + 1 epochs): every stage runs, a kill between stages is
resumed without redoing finished stages (driven through the public stage list), stages skipped by config and
a stage added to the list; the CLI and the library resolve the same defaults; finetuning a pruned checkpoint
through the CLI."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from train_helpers import voc_subset

from ascend_slim.cli import main
from ascend_slim.cli.slim import add_arguments, config_from_args
from ascend_slim.detector import Detector
from ascend_slim.errors import AscendSlimError
from ascend_slim.model.checkpoint import load_weights, save_checkpoint
from ascend_slim.prune import prune_channels
from ascend_slim.recipes.slim import SLIM_STAGES, STAGES, SlimConfig, SlimRun, Stage, slim


@pytest.fixture(scope="module")
def voc8(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_subset(tmp_path_factory.mktemp("voc8"), voc_root, 8)


def _config(voc8: Path, yolov5n_pt: Path, save_dir: Path, **overrides) -> SlimConfig:
    train = replace(SlimConfig().train, train_split="subset", val_split="subset", batch_size=4, workers=0)
    options = dict(weights=str(yolov5n_pt), classes="voc", data=str(voc8), percent=0.05, round_to=8,
                   sparsity_epochs=1, sparsity_rate=1e-2, finetune_epochs=1, distill=True, img_size=160, train=train,
                   latency_runs=2, save_dir=str(save_dir))
    options.update(overrides)
    return SlimConfig(**options)


def _replaced(stages: tuple[Stage, ...], **works) -> list[Stage]:
    """The recipe with the work of the named stages replaced."""
    return [replace(s, run=works[s.name]) if s.name in works else s for s in stages]


def test_slim_runs_resumes_after_a_kill_and_its_result_deploys(voc8: Path, yolov5n_pt: Path, images_dir: Path,
                                                               tmp_path: Path) -> None:
    config = _config(voc8, yolov5n_pt, tmp_path / "run", deploy=str(tmp_path / "bundle"))

    def killed(run: SlimRun):
        raise KeyboardInterrupt  # the process dies after finetuning, before the export stage

    with pytest.raises(KeyboardInterrupt):
        SlimRun.create(config, _replaced(SLIM_STAGES, export=killed)).run()
    state = json.loads((tmp_path / "run" / "slim.json").read_text())
    assert list(state["stages"]) == ["sparsity", "prune", "finetune"]
    finetuned = tmp_path / "run" / "finetune" / "weights" / "last.pt"
    stamp = finetuned.stat().st_mtime_ns
    recorded = dict(state["stages"])

    def must_not_run(run: SlimRun):
        raise AssertionError("a finished stage ran again")

    run = SlimRun.resume(tmp_path / "run", _replaced(SLIM_STAGES, sparsity=must_not_run, prune=must_not_run,
                                                      finetune=must_not_run))
    assert run.config == config.validated()  # the settings come back from slim.json, resolved
    run.run()
    assert list(run.records) == list(STAGES)
    assert finetuned.stat().st_mtime_ns == stamp
    assert {k: vars(run.records[k]) for k in recorded} == recorded  # finished stages' records kept as they were
    assert run.model_checkpoint() == str(finetuned)

    folder = tmp_path / "run"
    for name in ("final.pt", "final.onnx", "pruned.pt", "prune.json", "eval.json", "report.md", "report.json",
                 "report.png", "sparsity/sparsity/gamma_histograms.png"):
        assert (folder / name).is_file(), name
    report = json.loads((folder / "report.json").read_text())
    assert report["map"]["ap50_voc07"]["original"] > 0.3
    assert report["latency"]["1 thread"]["original_ms"] > 0
    assert report["prune"]["params"][1] < report["prune"]["params"][0]
    assert list(report["stages"]) == list(STAGES[:-1])  # every stage before the report
    assert report["sparsity"]["gamma_after"] != report["sparsity"]["gamma_before"]
    markdown = (folder / "report.md").read_text()
    assert "| mAP@0.5 VOC07 11-point |" in markdown
    assert all(f"| {name} |" in markdown for name in STAGES[:-1])

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


def test_stages_skipped_by_config_and_a_new_stage_is_one_entry(voc8: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    """No sparsity, no finetuning, no deploy: those stages are skipped and the export takes the pruned model; a
    stage added to the list runs in its place and its typed result is recorded and read back."""
    @dataclass
    class Count:
        checkpoint: str
        params: int

    def count(run: SlimRun) -> Count:
        model, _ = load_weights(run.model_checkpoint())
        return Count(run.model_checkpoint(), sum(p.numel() for p in model.parameters()))

    names = [s.name for s in SLIM_STAGES]
    stages = [*SLIM_STAGES[:names.index("export")], Stage("count", count, Count),
              SLIM_STAGES[names.index("export")]]
    config = _config(voc8, yolov5n_pt, tmp_path / "run", sparsity_epochs=0, finetune_epochs=0)
    run = SlimRun.create(config, stages).run()
    assert list(run.records) == ["prune", "count", "export"]
    assert run.result("count") == Count(str(tmp_path / "run" / "pruned.pt"), run.result("count").params)
    final, _ = load_weights(run.result("export").final_pt)
    assert sum(p.numel() for p in final.parameters()) == run.result("count").params
    assert run.result("finetune") is None
    again = SlimRun.resume(tmp_path / "run", stages)
    assert again.result("count") == run.result("count") and again.model_checkpoint() == run.model_checkpoint()


def test_cli_and_library_defaults_are_one_recipe(voc8: Path, yolov5n_pt: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--weights", str(yolov5n_pt), "--data", str(voc8), "--percent", "0.3"])
    from_cli = config_from_args(args).validated()
    assert from_cli == SlimConfig(weights=str(yolov5n_pt), data=str(voc8), percent=0.3).validated()
    assert from_cli.save_dir == "runs/slim/exp" and from_cli.train.train_split == "trainval"
    assert from_cli.train.img_size == from_cli.img_size == 640  # training follows --img unless --train-img
    args = parser.parse_args(["--weights", str(yolov5n_pt), "--data", str(voc8), "--percent", "0.3", "--img", "320"])
    assert config_from_args(args).validated().train.img_size == 320
    args = parser.parse_args(["--weights", str(yolov5n_pt), "--data", str(voc8), "--target-latency", "0.7",
                              "--train-img", "320", "--finetune-epochs", "0", "--workers", "0"])
    assert config_from_args(args).validated() == SlimConfig(
        weights=str(yolov5n_pt), data=str(voc8), target_latency=0.7, finetune_epochs=0,
        train=replace(SlimConfig().train, img_size=320, workers=0)).validated()


def test_slim_cli_and_bad_settings(voc8: Path, yolov5n_pt: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(AscendSlimError, match="exactly one"):
        _config(voc8, yolov5n_pt, tmp_path / "x", percent=None).validated()
    with pytest.raises(AscendSlimError, match="exactly one"):
        _config(voc8, yolov5n_pt, tmp_path / "x", target_latency=0.5).validated()
    with pytest.raises(AscendSlimError, match="not found"):
        _config(voc8, yolov5n_pt, tmp_path / "x", weights=str(tmp_path / "none.pt")).validated()
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "keep.txt").write_text("mine")
    with pytest.raises(AscendSlimError, match="not empty"):
        _config(voc8, yolov5n_pt, tmp_path / "x", deploy=str(tmp_path / "bundle")).validated()
    assert main(["slim", "--weights", str(yolov5n_pt), "--data", str(voc8), "--project", str(tmp_path / "p")]) != 0
    assert "--percent" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert main(["slim", "--weights", str(yolov5n_pt), "--data", str(voc8), "--percent", "0.1",
                 "--target-latency", "0.5", "--project", str(tmp_path / "p")]) != 0
    assert "exactly one" in capsys.readouterr().err
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
