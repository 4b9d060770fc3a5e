"""Side-by-side latency measurement and the machine description (torch-free parts of ascend_slim.report)."""

from __future__ import annotations

import pytest

from ascend_slim.errors import AscendSlimError
from ascend_slim.report.latency import measure_latency
from ascend_slim.report.machine import RELEVANT_FLAGS, cpu_info, describe_cpu


def test_latency_of_two_models_side_by_side(yolov5n_onnx):
    results = measure_latency([yolov5n_onnx, yolov5n_onnx], threads=1, runs=3, warmup=1, img_size=(128, 160))
    assert [len(r.samples_ms) for r in results] == [3, 3]
    assert all(r.median_ms > 0 and r.p90_ms >= r.median_ms for r in results)
    assert results[0].to_dict()["threads"] == 1


def test_dynamic_model_needs_a_size(yolov5n_onnx):
    with pytest.raises(AscendSlimError, match="dynamic size"):
        measure_latency([yolov5n_onnx], runs=1)


def test_bad_arguments(tmp_path):
    with pytest.raises(AscendSlimError, match="at least one model"):
        measure_latency([])
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(AscendSlimError, match="cannot load ONNX model"):
        measure_latency([junk], runs=1)


def test_cpu_info_lists_only_known_flags():
    info = cpu_info()
    assert info["cores"] >= 1 and set(info["flags"]) <= set(RELEVANT_FLAGS)
    assert info["model"] in describe_cpu(info)
