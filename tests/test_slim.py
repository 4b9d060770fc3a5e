"""The compound slim recipe end to end on a few images at tiny sizes: the plan, a cut with reconstruction, INT8,
a finetune epoch; a kill between stages is resumed without redoing finished stages (driven through the public
stage list); a plan that meets nothing keeps its measurements and a resume with another objective scores
nothing again; final.onnx runs at its stored size without flags; stages skipped by config and a stage added to
the list; the CLI and the library resolve the same defaults; bad settings fail before any work."""

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
from ascend_slim.recipes.slim import SLIM_STAGES, SlimConfig, SlimRun, Stage, slim


@pytest.fixture(scope="module")
def voc8(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 trainval images as split ``subset``, the next 8 as split ``pick`` (a labelled selection split), and the
    next 30 as ``pick30`` (enough images for an accuracy floor)."""
    folder = voc_subset(tmp_path_factory.mktemp("voc8"), voc_root, 8)
    ids = (voc_root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").read_text().split()
    (folder / "VOC2007" / "ImageSets" / "Main" / "pick.txt").write_text("\n".join(ids[8:16]) + "\n")
    (folder / "VOC2007" / "ImageSets" / "Main" / "pick30.txt").write_text("\n".join(ids[16:46]) + "\n")
    return folder


def _config(voc8: Path, yolov5n_pt: Path, save_dir: Path, **overrides) -> SlimConfig:
    train = replace(SlimConfig().train, train_split="subset", val_split="subset", batch_size=4, workers=0)
    options = dict(weights=str(yolov5n_pt), classes="voc", data=str(voc8), target_latency=0.95, max_drop=None,
                   img_size=160,
                   img_sizes=(96, 128), cuts=(0.1,), select_split="pick", recon_images=4, recon_samples=64,
                   calib_images=4, latency_runs=2, train=train, save_dir=str(save_dir))
    options.update(overrides)
    return SlimConfig(**options)


def _replaced(stages: tuple[Stage, ...], **works) -> list[Stage]:
    """The recipe with the work of the named stages replaced."""
    return [replace(s, run=works[s.name]) if s.name in works else s for s in stages]


def _must_not_run(run: SlimRun):
    raise AssertionError("a finished stage ran again")


def test_slim_runs_resumes_after_a_kill_and_its_result_deploys(voc8: Path, yolov5n_pt: Path, images_dir: Path,
                                                               tmp_path: Path) -> None:
    # with the FLOPs model the fastest candidate is the cut, in INT8 (the floor admits everything)
    config = _config(voc8, yolov5n_pt, tmp_path / "run", deploy=str(tmp_path / "bundle"), img_sizes=(160,),
                     cuts=(0.5,), target_latency=None, max_drop=100.0, latency_model="flops", finetune_epochs=1,
                     distill=True, freeze_bn=True, select_split="pick30")
    folder = tmp_path / "run"

    def killed(run: SlimRun):
        raise KeyboardInterrupt  # the process dies after finetuning, before the export stage

    with pytest.raises(KeyboardInterrupt):
        SlimRun.create(config, _replaced(SLIM_STAGES, export=killed)).run()
    state = json.loads((folder / "slim.json").read_text())
    done = ["plan", "prune", "reconstruct", "finetune"]
    assert list(state["stages"]) == done
    assert state["stages"]["plan"]["result"]["chosen"] == {"img_size": 160, "cut": 0.5, "precision": "int8"}
    finetuned = folder / "finetune" / "weights" / "last.pt"
    stamp = finetuned.stat().st_mtime_ns
    recorded = dict(state["stages"])

    run = SlimRun.resume(folder, _replaced(SLIM_STAGES, **dict.fromkeys(done, _must_not_run)))
    assert run.config == config.validated()  # the settings come back from slim.json, resolved
    run.run()
    chosen = run.chosen()
    assert list(run.records) == [*done, "export", "quantize", "evaluate", "latency", "deploy", "report"]
    assert finetuned.stat().st_mtime_ns == stamp
    assert {k: vars(run.records[k]) for k in recorded} == recorded  # finished stages' records kept as they were
    assert run.model_checkpoint() == str(finetuned)
    recon = run.result("reconstruct").report
    assert sum(layer["after"] for layer in recon["layers"]) < sum(layer["before"] for layer in recon["layers"])

    for name in ("final.pt", "final.onnx", "pruned.pt", "reconstructed.pt", "prune.json", "eval.json", "report.md",
                 "report.json", "report.png", "plan/plan.png", "plan/plan.md", "plan/plan.json"):
        assert (folder / name).is_file(), name
    report = json.loads((folder / "report.json").read_text())
    assert report["map"]["ap50_voc07"]["original"] > 0.3
    assert report["prune"]["params"][1] < report["prune"]["params"][0]
    assert report["img_size"] == {"original": 160, "final": 160}
    assert [s["step"] for s in report["plan"]["contributions"]] == ["original", "+ channel cut", "+ INT8"]
    assert list(report["stages"]) == list(run.records)[:-1]  # every stage before the report
    markdown = (folder / "report.md").read_text()
    assert "| mAP@0.5 VOC07 11-point |" in markdown and "## Channel cut" in markdown

    # final.pt: the finetuned, pruned architecture saved for the chosen size, the plan in its history;
    # final.onnx is static at that size and runs without flags
    final, info = load_weights(folder / "final.pt")
    pruned, _ = load_weights(folder / "pruned.pt")
    reconstructed, _ = load_weights(folder / "reconstructed.pt")
    tuned, before = final.state_dict(), reconstructed.state_dict()
    assert all(torch.allclose(tuned[k], before[k], atol=1e-6) for k in tuned if k.endswith("running_mean"))
    assert not all(torch.equal(tuned[k], before[k]) for k in tuned if k.endswith(".weight"))  # it did train
    assert final.spec == pruned.spec and info["img_size"] == chosen.img_size
    assert any(h["action"] == "slim_plan" and h["chosen"] == chosen.to_dict() for h in info["history"])
    torch.load(folder / "final.pt", weights_only=True)
    graph = onnx.load(str(folder / "final.onnx")).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, 160, 160]
    assert [o.name for o in graph.output] == ["head0", "head1", "head2"]
    image = cv2.imread(str(images_dir / "bus.jpg"))
    with Detector(folder / "final.onnx", conf_thres=0.001) as detector:
        assert detector.img_size == (chosen.img_size, chosen.img_size)
        detections = detector.predict(image)
    assert len(detections) > 0 and np.isfinite(detections.to_array()).all()
    with Detector(folder / "final.pt") as detector:
        assert detector.img_size == (chosen.img_size, chosen.img_size)
    assert (tmp_path / "bundle" / "README.txt").is_file()
    assert "skip_layers" in (tmp_path / "bundle" / "model" / "amct.cfg").read_text()

    with pytest.raises(AscendSlimError, match="already holds a slim run"):
        slim(_config(voc8, yolov5n_pt, folder))


def test_a_plan_that_meets_nothing_resumes_with_another_objective_and_scores_nothing_again(
        voc8: Path, yolov5n_pt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "p"
    code = main(["slim", "--weights", str(yolov5n_pt), "--classes", "voc", "--data", str(voc8), "--train-split",
                 "subset", "--val-split", "subset", "--select-split", "pick", "--img", "160", "--img-sizes", "96,128",
                 "--cuts", "none", "--no-int8", "--latency-runs", "2", "--target-latency", "0.01",
                 "--max-drop", "none", "--project", str(tmp_path), "--name", "p"])
    err = capsys.readouterr().err
    assert code == 1 and "no scored candidate meets latency <= 0.01" in err and "resume with another" in err
    assert "No model was written" in err and not (folder / "final.onnx").exists()
    measured = json.loads((folder / "plan" / "measurements.json").read_text())
    assert {"96-c0-fp32", "128-c0-fp32", "160-c0-fp32"} <= set(measured["measurements"])
    assert main(["slim", "--resume", str(folder), "--img", "320"]) == 1
    assert "--img cannot change when resuming" in capsys.readouterr().err

    run = SlimRun.resume(folder).with_objective(0.9, None, 0.9)
    plan_only = replace(run.config, plan_only=True)
    SlimRun(plan_only, run.records, run.stages).run()
    plan = json.loads((folder / "slim.json").read_text())["stages"]["plan"]["result"]
    assert plan["met"] is True and plan["scored_now"] == 0  # every candidate came from the cache
    assert plan["scored"] == len(json.loads((folder / "plan" / "measurements.json").read_text())["measurements"])
    with pytest.raises(AscendSlimError, match="finished its plan"):
        SlimRun.resume(folder).with_objective(0.5, None, 0.9)


def test_stages_skipped_by_config_and_a_new_stage_is_one_entry(voc8: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    """No cut, no INT8, no training, no deploy: those stages are skipped and the export takes the original at the
    chosen size; a stage added to the list runs in its place and its typed result is recorded and read back."""
    @dataclass
    class Count:
        size: int
        params: int

    def count(run: SlimRun) -> Count:
        return Count(run.chosen().img_size, sum(p.numel() for p in run.current_model().parameters()))

    names = [s.name for s in SLIM_STAGES]
    stages = [*SLIM_STAGES[:names.index("export")], Stage("count", count, Count),
              *SLIM_STAGES[names.index("export"):names.index("evaluate")]]
    config = _config(voc8, yolov5n_pt, tmp_path / "run", cuts=(), int8=False, latency_model="flops",
                     target_latency=0.5)
    run = SlimRun.create(config, stages).run()
    assert list(run.records) == ["plan", "count", "export"]
    assert run.chosen().img_size == 96  # FLOPs: (96/160)^2 = 0.36 <= 0.5 < (128/160)^2 = 0.64
    final, info = load_weights(run.result("export").final_pt)
    assert run.result("count") == Count(96, sum(p.numel() for p in final.parameters())) and info["img_size"] == 96
    assert run.result("prune") is None and run.result("quantize") is None
    again = SlimRun.resume(tmp_path / "run", stages)
    assert again.result("count") == run.result("count") and again.chosen() == run.chosen()


def test_cli_and_library_defaults_are_one_recipe(voc8: Path, yolov5n_pt: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--weights", str(yolov5n_pt), "--data", str(voc8)])
    from_cli = config_from_args(args).validated()
    assert from_cli == SlimConfig(weights=str(yolov5n_pt), data=str(voc8)).validated()
    assert from_cli.save_dir == "runs/slim/exp" and from_cli.train.train_split == "trainval"
    assert from_cli.select_split == "trainval" and from_cli.target_latency is None and from_cli.int8
    assert from_cli.max_drop == 1.0 and from_cli.confidence == 0.5 and from_cli.folds == 2  # the floor by default
    args = parser.parse_args(["--weights", str(yolov5n_pt), "--data", str(voc8), "--target-latency", "none",
                              "--max-drop", "1", "--img-sizes", "320-416", "--cuts", "none", "--train-img", "320",
                              "--finetune-epochs", "2", "--train-split", "train", "--workers", "0"])
    assert config_from_args(args).validated() == SlimConfig(
        weights=str(yolov5n_pt), data=str(voc8), target_latency=None, max_drop=1.0, img_sizes=(320, 352, 384, 416),
        cuts=(), finetune_epochs=2, train=replace(SlimConfig().train, img_size=320, workers=0, train_split="train"),
    ).validated()


def test_slim_bad_settings_fail_before_any_work(voc8: Path, yolov5n_pt: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(AscendSlimError, match="held out"):
        _config(voc8, yolov5n_pt, tmp_path / "x", select_split="test").validated()
    with pytest.raises(AscendSlimError, match="overlaps the training split"):
        _config(voc8, yolov5n_pt, tmp_path / "x", select_split="subset", finetune_epochs=1).validated()
    with pytest.raises(AscendSlimError, match="nothing to optimise"):
        _config(voc8, yolov5n_pt, tmp_path / "x", target_latency=None).validated()
    with pytest.raises(AscendSlimError, match="not found"):
        _config(voc8, yolov5n_pt, tmp_path / "x", weights=str(tmp_path / "none.pt")).validated()
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "keep.txt").write_text("mine")
    with pytest.raises(AscendSlimError, match="not empty"):
        _config(voc8, yolov5n_pt, tmp_path / "x", deploy=str(tmp_path / "bundle")).validated()
    # an 80-class model on 20-class data is refused before the run folder exists
    with pytest.raises(AscendSlimError, match="add --classes voc"):
        SlimRun.create(_config(voc8, yolov5n_pt, tmp_path / "x", classes=""))
    assert not (tmp_path / "x").exists()
    # a run whose first stage fails leaves nothing behind
    def broken(run: SlimRun):
        raise AscendSlimError("broken")

    with pytest.raises(AscendSlimError, match="broken"):
        SlimRun.create(_config(voc8, yolov5n_pt, tmp_path / "y"), _replaced(SLIM_STAGES, plan=broken)).run()
    assert not (tmp_path / "y").exists()
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
