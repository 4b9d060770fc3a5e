"""`report` library: a checkpoint and its exports (float and INT8) count the same parameters and FLOPs, sizes and
latency are measured side by side, and the three renderings agree; mAP on a small VOC split."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from ascend_slim.errors import AscendSlimError
from ascend_slim.export import export_onnx
from ascend_slim.model.checkpoint import load_weights, save_checkpoint
from ascend_slim.model.cost import model_cost
from ascend_slim.prune import prune_channels
from ascend_slim.report.compare import compare_models, onnx_cost, voc_map

IMG = 160


@pytest.fixture(scope="module")
def models(yolov5n_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Random(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = 2

        def get_next(self) -> dict | None:
            if self.left == 0:
                return None
            self.left -= 1
            return {"images": np.random.default_rng(self.left).random((1, 3, IMG, IMG), dtype=np.float32)}

    tmp = tmp_path_factory.mktemp("report")
    model, _ = load_weights(yolov5n_pt)
    pruned = prune_channels(model, percent=0.2, round_to=8, img_size=IMG).model
    paths = {"pt": yolov5n_pt, "pruned": save_checkpoint(tmp / "pruned.pt", pruned),
             "onnx": export_onnx(model, tmp / "float.onnx", img_size=IMG),
             "dynamic": export_onnx(model, tmp / "dynamic.onnx", img_size=IMG, dynamic=True)}
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization's pre-processing advice
    quantize_static(str(paths["onnx"]), str(tmp / "int8.onnx"), Random(), quant_format=QuantFormat.QDQ)
    paths["int8"] = tmp / "int8.onnx"
    return paths


def test_onnx_counts_match_the_checkpoint(models: dict[str, Path]) -> None:
    from ascend_slim.export import deployable

    model, _ = load_weights(models["pt"])
    cost = model_cost(deployable(model), IMG)
    assert cost.params == 1_867_405  # the official fused figure
    for key in ("onnx", "dynamic", "int8"):
        params, gflops = onnx_cost(models[key], IMG)
        assert params == cost.params and gflops == pytest.approx(cost.gflops, rel=1e-9)
    assert onnx_cost(models["dynamic"], 2 * IMG)[1] == pytest.approx(4 * cost.gflops)


def test_compare_pt_with_int8_onnx(models: dict[str, Path]) -> None:
    result = compare_models(models["pt"], models["int8"], img_size=IMG, runs=3, warmup=1)
    a, b = result.models
    assert a.params == b.params and a.gflops == pytest.approx(b.gflops)
    assert a.checkpoint_bytes == models["pt"].stat().st_size and b.checkpoint_bytes is None
    assert b.onnx_bytes == models["int8"].stat().st_size < 0.5 * a.onnx_bytes
    assert set(a.latency_ms) == set(b.latency_ms) == {"1 thread", "all cores"}
    assert all(v > 0 for m in result.models for v in m.latency_ms.values())
    table, markdown, data = result.format_table(), result.format_markdown(), result.to_dict()
    for row in result.rows()[1:]:
        assert row[0] in table and f"| {row[0]} |" in markdown
    assert f"{b.onnx_bytes / a.onnx_bytes:.3f}" in table
    assert json.loads(json.dumps(data))["models"][1]["params"] == b.params


def test_compare_pruned_with_map(models: dict[str, Path], voc_root: Path, tmp_path: Path) -> None:
    """mAP on an 8-image VOC split; a checkpoint scores what its own float export scores."""
    root = tmp_path / "VOCdevkit" / "VOC2007"
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for sub in ("Annotations", "JPEGImages"):
        (root / sub).symlink_to(voc_root / "VOC2007" / sub)
    ids = (voc_root / "VOC2007" / "ImageSets" / "Main" / "test.txt").read_text().split()[:8]
    (root / "ImageSets" / "Main" / "test.txt").write_text("\n".join(ids) + "\n")
    result = compare_models(models["pt"], models["pruned"], img_size=IMG, data=tmp_path / "VOCdevkit", runs=2,
                            warmup=0)
    a, b = result.models
    assert set(a.map) == set(b.map) == {"ap50_voc07", "ap50", "ap50_95"}
    assert a.map == pytest.approx(voc_map(models["onnx"], tmp_path / "VOCdevkit", IMG), abs=1e-6)
    assert a.map["ap50"] > 0.2
    assert b.params < a.params and b.gflops < a.gflops and "mAP ap50_voc07" in result.format_table()


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(AscendSlimError, match="not found"):
        compare_models(tmp_path / "missing.pt")
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(AscendSlimError, match="cannot read ONNX model"):
        onnx_cost(bad)
    other = tmp_path / "model.bin"
    other.write_bytes(b"")
    with pytest.raises(AscendSlimError, match=r"\.pt checkpoints and \.onnx"):
        compare_models(other)
