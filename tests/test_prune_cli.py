"""`ascend-slim prune` and `ascend-slim report` as a user runs them (in-process `main`), bad input included."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from ascend_slim.cli import main
from ascend_slim.model import YOLOv5
from ascend_slim.model.checkpoint import load_weights, save_checkpoint


def test_prune_slim_with_report(yolov5n_pt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, report = tmp_path / "pruned.pt", tmp_path / "prune.json"
    code = main(["prune", "--weights", str(yolov5n_pt), "--percent", "0.2", "--round-to", "8", "--classes", "voc",
                 "--img", "320", "--cfg", "models/yolov5s.yaml", "--report", str(report), "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "--cfg models/yolov5s.yaml is ignored" in printed and "safety bound" in printed and "total" in printed
    data = json.loads(report.read_text())
    assert data["method"] == "slim" and data["percent"] == pytest.approx(0.2, abs=1e-3) and data["fold_bias"]
    assert data["kept"]["model.2.cv1.bn"] == data["kept"]["model.2.m.0.cv2.bn"]
    assert len(data["layers"]) == 25 and data["params"][1] < data["params"][0]
    raw = torch.load(out, weights_only=True)
    assert raw["names"][0] == "aeroplane" and raw["history"][-1]["kept"] == data["kept"]


def test_report_writes_json_and_markdown(yolov5n_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["report", "--weights", str(yolov5n_onnx), "--img", "160", "--runs", "2",
                 "--json", str(tmp_path / "r.json"), "--md", str(tmp_path / "r.md")])
    assert code == 0 and "latency 1 thread ms" in capsys.readouterr().out
    (facts,) = json.loads((tmp_path / "r.json").read_text())["models"]
    assert facts["params"] == 1_867_405 and facts["checkpoint_bytes"] is None
    assert "| GFLOPs @160 | 0.28 |" in (tmp_path / "r.md").read_text()


def test_prune_magnitude(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, report = tmp_path / "sparse.pt", tmp_path / "sparse.json"
    code = main(["prune", "--weights", "yolov5n.yaml", "--method", "magnitude", "--amount", "0.4", "--scope", "layer",
                 "-o", str(out), "--report", str(report)])
    printed = capsys.readouterr().out
    assert code == 0 and "zip-compressed" in printed and "model.24.m.2" in printed
    data = json.loads(report.read_text())
    assert data["conv_sparsity"] == pytest.approx(0.4, abs=0.01)
    assert data["checkpoint_bytes"]["after"]["compressed"] < data["checkpoint_bytes"]["before"]["compressed"]
    model, _ = load_weights(out)
    assert float((model.model[3].conv.weight == 0).float().mean()) == pytest.approx(0.4, abs=0.01)


@pytest.fixture(scope="module")
def fused_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("fused") / "fused.pt", YOLOv5.from_yaml("yolov5n").fuse())


@pytest.mark.parametrize(("flags", "message"), [
    (["--percent", "1.0"], r"prune percent must lie in \[0, 1\)"),
    (["--percent", "0.6"], "would remove every channel of model"),
    (["--percent", "0.1", "--round-to", "64"], "round-to 64 exceeds the width of model.0"),
    (["--target-flops", "0.3"], "target FLOPs ratio 0.3 cannot be met"),
    (["--method", "magnitude", "--percent", "0.1"], "--method magnitude takes --amount"),
    (["--method", "slim"], "needs one of --percent"),
    ("fused", "fused"),
    ("unknown-module", "module 'GhostConv' is not supported"),
])
def test_bad_input_writes_nothing(yolov5n_pt: Path, fused_pt: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                  flags: list[str] | str, message: str) -> None:
    weights = str(yolov5n_pt)
    if flags == "fused":
        weights, flags = str(fused_pt), ["--percent", "0.1"]
    elif flags == "unknown-module":
        yaml_path = tmp_path / "ghost.yaml"
        yaml_path.write_text("nc: 1\ndepth_multiple: 1\nwidth_multiple: 1\nanchors: [[10, 13]]\n"
                             "backbone: [[-1, 1, GhostConv, [16, 3, 2]]]\nhead: [[[0], 1, Detect, [nc, anchors]]]\n")
        weights, flags = str(yaml_path), ["--percent", "0.1"]
    out = tmp_path / "out" / "pruned.pt"
    code = main(["prune", "--weights", weights, *flags, "-o", str(out), "--report", str(tmp_path / "out" / "r.json")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("ascend-slim prune: error: ") and err.count("\n") == 1
    assert re.search(message, err)
    assert not out.parent.exists() or not any(out.parent.iterdir())
