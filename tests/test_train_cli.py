"""``ascend-slim train`` / ``finetune`` from the command line: finetuning keeps a checkpoint's own (e.g. pruned)
architecture; bad flags and inputs are one error line; run folders increment as Ultralytics'."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import voc_subset

from ascend_slim.classes import VOC_CLASSES
from ascend_slim.cli import main
from ascend_slim.model.checkpoint import load_weights, save_checkpoint
from ascend_slim.model.remap import remap_classes
from ascend_slim.model.yolo import YOLOv5
from ascend_slim.train.builder import next_run_dir, transfer_weights

SMALL = ["--train-split", "subset", "--val-split", "subset", "--img", "160", "--batch-size", "2", "--epochs", "1",
         "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_voc(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_subset(tmp_path_factory.mktemp("voc4"), voc_root, 4)


def test_finetune_keeps_the_checkpoint_architecture(tiny_voc: Path, yolov5n_pt: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    official = remap_classes(load_weights(yolov5n_pt)[0], VOC_CLASSES)
    spec = official.spec
    spec["layers"][2]["m"][0]["cv1"] = 8  # a "pruned" bottleneck: 8 of its 16 hidden channels
    narrow = YOLOv5.from_spec(spec)
    # all but the narrowed conv's weight and BN (4 float tensors) and the next conv's weight
    assert transfer_weights(official, narrow) == len(narrow.state_dict()) - 6
    pruned = save_checkpoint(tmp_path / "pruned.pt", narrow, img_size=160)

    code = main(["finetune", "--weights", str(pruned), "--data", str(tiny_voc), *SMALL,
                 "--project", str(tmp_path / "runs"), "--name", "ft"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "done:" in out and "mAP_0.5" in out
    model, info = load_weights(tmp_path / "runs" / "ft" / "weights" / "last.pt")
    assert model.spec["layers"] == spec["layers"] and model.names == list(VOC_CLASSES)
    assert [h["action"] for h in info["history"]][-1] == "train"


@pytest.mark.parametrize(("args", "message"), [
    (["--weights", "x.pt"], "--data is required"),
    (["--data", "{voc}"], "nothing to train"),
    (["--data", "{tmp}/missing", "--cfg", "yolov5n"], "not found"),
    (["--data", "{voc}", "--cfg", "yolov5n", "--hyp", "{tmp}/hyp.yaml"], "unknown hyperparameter 'lr00'"),
    (["--data", "{voc}", "--weights", "{tmp}/none.pt"], "not found"),
    (["--resume", "--project", "{tmp}/nothing"], "no last.pt"),
    (["--data", "{voc}", "--cfg", "yolov5n", "--img", "100"], "multiple of the model stride"),
    (["--data", "{voc}", "--cfg", "yolov5n", "--device", "gpu7"], "--device 'gpu7'"),
])
def test_errors_are_one_line(args: list[str], message: str, tiny_voc: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hyp.yaml").write_text("lr00: 0.1\n")
    argv = [a.format(voc=tiny_voc, tmp=tmp_path) for a in args]
    defaults = ["--train-split", "subset", "--val-split", "subset", "--workers", "0", "--project", str(tmp_path)]
    code = main(["train", *argv, *([] if "--resume" in args else defaults)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("ascend-slim train: error:") and message in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("exp*"))  # nothing written


def test_bad_flag_values_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--cache", "disk"], ["--optimizer", "Lion"], ["--epochs", "0"]):
        with pytest.raises(SystemExit) as exc:
            main(["train", "--data", "x", *argv])
        assert exc.value.code == 2
    assert "only --cache ram" in capsys.readouterr().err


def test_run_folders_increment(tmp_path: Path) -> None:
    assert next_run_dir(tmp_path, "exp") == tmp_path / "exp"
    (tmp_path / "exp").mkdir()
    assert next_run_dir(tmp_path, "exp") == tmp_path / "exp2"
    (tmp_path / "exp2").mkdir()
    assert next_run_dir(tmp_path, "exp") == tmp_path / "exp3"
    assert next_run_dir(tmp_path, "exp", exist_ok=True) == tmp_path / "exp"


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_run_folders_are_created_exclusively(command: str, tiny_voc: Path, yolov5n_pt: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs that chose one free name before either made it (two processes started together): the folder is
    made without exist-ok, so this one takes the next name (was: both trained into exp). A start that fails
    leaves no empty folder; --exist-ok into a folder holding a run is refused."""
    import ascend_slim.train.builder as builder

    project = tmp_path / "runs"
    (project / "exp").mkdir(parents=True)  # made by the other run after both chose "exp"
    monkeypatch.setattr(builder, "next_run_dir", lambda project, name, exist_ok: Path(project) / name)
    used = []

    def stop(config, callbacks, **kwargs):
        used.append(Path(config.save_dir))
        raise KeyboardInterrupt

    monkeypatch.setattr(builder, "build_trainer", stop)
    weights = ["--weights", str(yolov5n_pt)] if command == "finetune" else ["--cfg", "yolov5n"]
    argv = [command, "--data", str(tiny_voc), *weights, *SMALL, "--project", str(project)]
    assert main(argv) == 130
    assert used == [project / "exp2"] and sorted(p.name for p in project.iterdir()) == ["exp"]
    (project / "exp" / "results.csv").write_text("epoch\n0\n")
    capsys.readouterr()
    assert main([*argv, "--exist-ok"]) == 1
    assert "runs/exp holds a training run (results.csv): resume it with --resume" in capsys.readouterr().err
