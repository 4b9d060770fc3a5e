"""Resume: an interrupted run continues to the same final weights as an uninterrupted one; a SIGKILLed
``ascend-slim train`` resumes with ``--resume``; the checkpoint loads with weights_only, detects and exports."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import small_config, voc_subset

from ascend_slim.detector import Detector
from ascend_slim.errors import AscendSlimError
from ascend_slim.export import export_onnx
from ascend_slim.model.checkpoint import load_training_state, load_weights
from ascend_slim.train.builder import build_trainer, resume_trainer
from ascend_slim.train.callbacks import Callback

TIMEOUT_S = 300


class Interrupted(Exception):
    pass


class StopAfterEpoch(Callback):
    """Simulates a crash right after an epoch's checkpoint was written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == self.epoch:
            raise Interrupted


def epochs_in(results: Path) -> list[int]:
    with results.open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def tiny_voc(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_subset(tmp_path_factory.mktemp("voc4"), voc_root, 4)


@pytest.fixture(scope="module")
def runs(tiny_voc: Path, yolov5n_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 3-epoch run twice: uninterrupted, and interrupted after epoch 1 then resumed."""
    root = tmp_path_factory.mktemp("runs")
    full = build_trainer(small_config(tiny_voc, yolov5n_pt, root / "full"))
    full.fit()
    cut = build_trainer(small_config(tiny_voc, yolov5n_pt, root / "cut"), callbacks=[StopAfterEpoch(1)])
    with pytest.raises(Interrupted):
        cut.fit()
    assert load_training_state(cut.last_path)["epoch"] == 1
    longer = resume_trainer(cut.last_path, epochs=6)  # --epochs with --resume: the schedule is recomputed
    assert (longer.epochs, longer.start_epoch, longer.schedule.epochs) == (6, 2, 6)
    with pytest.raises(AscendSlimError, match=r"--epochs 2: .* has finished 2 epoch\(s\) already"):
        resume_trainer(cut.last_path, epochs=2)
    resumed = resume_trainer(cut.last_path)
    assert longer.schedule.lr_factor(2) > resumed.schedule.lr_factor(2)  # the longer schedule decays slower
    assert resumed.start_epoch == 2
    resumed.fit()
    return {"full": root / "full", "cut": root / "cut"}


def test_resumed_run_equals_uninterrupted(runs: dict[str, Path], yolov5n_pt: Path) -> None:
    full = torch.load(runs["full"] / "weights" / "last.pt", weights_only=True)
    resumed = torch.load(runs["cut"] / "weights" / "last.pt", weights_only=True)
    assert "training" not in full and "training" not in resumed  # finished runs keep inference weights only
    start, _ = load_weights(yolov5n_pt)
    moved = 0.0
    for key, value in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=1e-5)
        if key == "model.24.m.0.bias":
            moved = (value[:5] - start.state_dict()[key][:5]).abs().max().item()
    assert moved > 1e-4  # training changed the weights, so equality means something
    assert epochs_in(runs["full"] / "results.csv") == epochs_in(runs["cut"] / "results.csv") == [0, 1, 2]
    train_record = resumed["history"][-1]
    assert train_record["action"] == "train" and train_record["epochs"] == 3
    assert [h["action"] for h in resumed["history"]].count("train") == 1
    assert (runs["cut"] / "results.png").stat().st_size > 0 and (runs["cut"] / "weights" / "best.pt").is_file()


def test_checkpoint_detects_and_exports(runs: dict[str, Path], images_dir: Path, tmp_path: Path) -> None:
    last = runs["full"] / "weights" / "last.pt"
    model, info = load_weights(last)
    assert info["source_format"] == "ascend-slim" and model.nc == 20 and info["img_size"] == 160
    with Detector(last, img_size=320, conf_thres=0.25) as det:
        dets = det.predict(images_dir / "bus.jpg")
    assert "person" in dets.labels and "bus" in dets.labels
    onnx_path = export_onnx(model, tmp_path / "trained.onnx", img_size=160)
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 160, 160), dtype=np.float32)
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        heads = model.eval()(torch.from_numpy(x))
    for out, head in zip(outputs, heads):
        np.testing.assert_allclose(out, head.numpy(), atol=1e-4)


def test_resume_refusals(runs: dict[str, Path], yolov5n_pt: Path, tmp_path: Path) -> None:
    with pytest.raises(AscendSlimError, match="nothing to resume"):
        resume_trainer(runs["full"] / "weights" / "last.pt")
    with pytest.raises(AscendSlimError, match="not an ascend-slim checkpoint"):
        resume_trainer(yolov5n_pt)


def test_sigkill_mid_run_then_resume(tiny_voc: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    project = tmp_path / "runs"
    command = [sys.executable, "-m", "ascend_slim", "train", "--data", str(tiny_voc), "--weights", str(yolov5n_pt),
               "--classes", "voc", "--train-split", "subset", "--val-split", "subset", "--img", "160",
               "--batch-size", "2", "--epochs", "6", "--workers", "0", "--device", "cpu", "--project", str(project)]
    last = project / "exp" / "weights" / "last.pt"
    with open(tmp_path / "first.log", "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT_S
        while not last.exists():
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("no checkpoint within the time limit")
            time.sleep(0.02)
        time.sleep(0.2)  # into the next epoch
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    saved_epoch = load_training_state(last)["epoch"]
    assert saved_epoch < 5, "the run finished before it was killed"

    resumed = subprocess.run([sys.executable, "-m", "ascend_slim", "train", "--resume", "--project", str(project)],
                             capture_output=True, text=True, timeout=TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"training {saved_epoch + 1}..5" in resumed.stdout
    assert epochs_in(project / "exp" / "results.csv") == list(range(6))
    _, info = load_weights(last)
    assert info["history"][-1]["epochs"] == 6
