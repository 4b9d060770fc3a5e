"""The OpenVINO runtime (the ``openvino`` extra, installed by run.sh and CI): the IR export carries the model facts,
the backend scores the test split as onnxruntime does, NNCF INT8 keeps the stem and Detect convs float and still
scores, ``--threads``/``--workers`` reach OpenVINO's settings, bad IR files fail in one line, the inference path
imports no torch, ``slim --runtime openvino`` builds an IR, and ``report --runtimes`` compares the runtimes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ascend_slim.cli import main
from ascend_slim.detector import Detector
from ascend_slim.errors import AscendSlimError
from ascend_slim.evaluation import evaluate_file, evaluation_set
from ascend_slim.evaluation.protocol import HEADLINE_METRICS
from ascend_slim.openvino_ir import read_model
from ascend_slim.quant.calibration import voc_images
from ascend_slim.runtime.openvino_backend import OpenVinoBackend, compile_config

SIZE = 320  # a small static size keeps the test split cheap to score twice
TEST_IMAGES = 100  # the first 100 images of the shared VOC07 test split


def cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ascend_slim", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def exported(yolov5n_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """yolov5n with VOC classes at 320: the ONNX export and the IR export (`export --format openvino`)."""
    folder = tmp_path_factory.mktemp("ov")
    for fmt, name in (("onnx", "n.onnx"), ("openvino", "n.xml")):
        assert main(["export", "--weights", str(yolov5n_pt), "--classes", "voc", "--img", str(SIZE),
                     "--format", fmt, "-o", str(folder / name)]) == 0
    return {"onnx": folder / "n.onnx", "xml": folder / "n.xml"}


def voc_test_subset(folder: Path, voc_root: Path, count: int) -> Path:
    """A VOCdevkit in ``folder`` whose split ``test`` is the first ``count`` ids of the shared test split."""
    year = folder / "VOC2007"
    (year / "ImageSets" / "Main").mkdir(parents=True)
    for name in ("Annotations", "JPEGImages"):
        (year / name).symlink_to(voc_root / "VOC2007" / name, target_is_directory=True)
    ids = (voc_root / "VOC2007" / "ImageSets" / "Main" / "test.txt").read_text().split()[:count]
    (year / "ImageSets" / "Main" / "test.txt").write_text("\n".join(ids) + "\n")
    return folder


@pytest.fixture(scope="module")
def test_subset(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return voc_test_subset(tmp_path_factory.mktemp("voctest"), voc_root, TEST_IMAGES)


@pytest.fixture(scope="module")
def fp32_maps(exported: dict[str, Path], test_subset: Path) -> dict[str, dict[str, float]]:
    dataset = evaluation_set(test_subset, "test")
    maps = {}
    for backend in ("onnxruntime", "openvino"):
        result = evaluate_file(exported["onnx" if backend == "onnxruntime" else "xml"], dataset, progress=False).result
        maps[backend] = {key: float(result.means[key]) for key in HEADLINE_METRICS}
    return maps


def test_ir_export_carries_the_onnx_model_facts(exported: dict[str, Path]) -> None:
    import onnx

    from ascend_slim.meta import ModelMeta

    proto = onnx.load(str(exported["onnx"]))
    onnx_meta = ModelMeta.from_props({p.key: p.value for p in proto.metadata_props})
    _, ir_meta = read_model(exported["xml"])
    assert exported["xml"].with_suffix(".bin").stat().st_size > 1_000_000  # FP32 weights of yolov5n
    assert ir_meta.names == onnx_meta.names and len(ir_meta.names) == 20
    assert ir_meta.img_size == (SIZE, SIZE) and ir_meta.strides == onnx_meta.strides
    np.testing.assert_array_equal(ir_meta.anchors, onnx_meta.anchors)
    assert ir_meta.history[:-1] == onnx_meta.history and ir_meta.history[-1]["action"] == "convert_openvino"


def test_openvino_fp32_scores_the_test_split_as_onnxruntime(fp32_maps: dict[str, dict[str, float]]) -> None:
    ort_map, ov_map = fp32_maps["onnxruntime"], fp32_maps["openvino"]
    assert ort_map["ap50_voc07"] > 0.5  # a real model on real images
    for key in HEADLINE_METRICS:
        assert abs(ov_map[key] - ort_map[key]) <= 0.003, (key, ov_map[key], ort_map[key])


def test_detect_gives_the_same_boxes_on_both_runtimes(exported: dict[str, Path], images_dir: Path) -> None:
    images = sorted(images_dir.glob("*.jpg"))
    with Detector(exported["onnx"]) as ort_det, Detector(exported["xml"]) as ov_det:
        assert ov_det.backend.name == "openvino"  # chosen automatically for .xml
        for image in images:
            a, b = ort_det.predict(image), ov_det.predict(image)
            assert len(a) == len(b) > 0
            order_a, order_b = np.lexsort(a.boxes.T), np.lexsort(b.boxes.T)
            np.testing.assert_allclose(a.boxes[order_a], b.boxes[order_b], atol=0.05)
            np.testing.assert_array_equal(a.class_ids[order_a], b.class_ids[order_b])


def test_nncf_int8_keeps_the_stem_and_detect_float_and_scores(exported: dict[str, Path], voc_root: Path,
                                                              test_subset: Path, tmp_path: Path,
                                                              fp32_maps: dict[str, dict[str, float]]) -> None:
    from ascend_slim.quant.openvino_int8 import quantize_openvino

    out = tmp_path / "n.int8.xml"
    report = quantize_openvino(exported["xml"], out, voc_images(voc_root, 16), progress=False)
    ops = report.float_nodes
    assert len(ops) == 4 and sum("model.24" in name for name in ops) == 3 and "model.0" in ops[0]
    assert report.quantized_convs == 56 and report.float_convs == 4
    model, meta = read_model(out)
    fake_quantized = {op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "FakeQuantize"}
    assert fake_quantized and meta.history[-1]["action"] == "quantize_int8"
    assert meta.history[-1]["float_nodes"] == ops and meta.names == read_model(exported["xml"])[1].names
    result = evaluate_file(out, evaluation_set(test_subset, "test"), progress=False).result
    fp32 = fp32_maps["openvino"]["ap50_voc07"]
    assert result.means["ap50_voc07"] > fp32 - 0.03, (result.means["ap50_voc07"], fp32)
    with pytest.raises(AscendSlimError, match="already quantized"):
        quantize_openvino(out, tmp_path / "again.xml", voc_images(voc_root, 1), progress=False)


def test_threads_and_workers_map_onto_openvino_streams(exported: dict[str, Path]) -> None:
    assert compile_config(1, None) == {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                                       "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    with OpenVinoBackend(exported["xml"], num_threads=1) as one:
        assert str(one.compiled.get_property("PERFORMANCE_HINT")) == "LATENCY"
        assert one.compiled.get_property("NUM_STREAMS") == 1
        assert one.compiled.get_property("INFERENCE_NUM_THREADS") == 1
        assert str(one.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
        with pytest.raises(AscendSlimError, match="does not match the model input"):
            one.run(np.zeros((1, 3, SIZE + 32, SIZE), np.float32))
    with OpenVinoBackend(exported["xml"], num_threads=1, streams=2) as two:
        assert str(two.compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"
        assert two.compiled.get_property("NUM_STREAMS") == 2
        assert two.compiled.get_property("INFERENCE_NUM_THREADS") == 2


def test_bad_ir_files_fail_in_one_line(exported: dict[str, Path], images_dir: Path, tmp_path: Path) -> None:
    cases = {}
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("<net name='x'")
    cases["not a readable OpenVINO IR"] = garbage
    foreign = tmp_path / "foreign.xml"
    foreign.write_text("<annotation><object/></annotation>")
    shutil.copy(exported["xml"].with_suffix(".bin"), foreign.with_suffix(".bin"))
    cases["not an OpenVINO IR"] = foreign
    no_bin = tmp_path / "nobin.xml"
    shutil.copy(exported["xml"], no_bin)
    cases["nobin.bin of nobin.xml is missing"] = no_bin
    empty_bin = tmp_path / "empty.xml"
    shutil.copy(exported["xml"], empty_bin)
    empty_bin.with_suffix(".bin").write_bytes(b"")
    cases["is empty"] = empty_bin
    for message, path in cases.items():
        out = cli("detect", "--weights", path, "--source", images_dir, "--out", tmp_path / "res")
        assert out.returncode != 0 and message in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "res").exists()
    with pytest.raises(AscendSlimError, match="run it with --backend openvino"):
        Detector(exported["xml"], backend="onnxruntime")
    with pytest.raises(AscendSlimError, match="runs on the CPU"):
        Detector(exported["xml"], device="cuda:0")


def test_missing_extra_names_it(exported: dict[str, Path], images_dir: Path, tmp_path: Path) -> None:
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from ascend_slim.cli import main\n"
            f"sys.exit(main(['detect', '--weights', {str(exported['xml'])!r}, '--source', {str(images_dir)!r}, "
            f"'--out', {str(tmp_path / 'res')!r}]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0 and "pip install 'ascend-slim[openvino]'" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_inference_on_an_ir_imports_no_torch(exported: dict[str, Path], images_dir: Path, test_subset: Path,
                                             tmp_path: Path) -> None:
    runs = [["detect", "--weights", exported["xml"], "--source", images_dir, "--out", tmp_path / "det"],
            ["speed", "--weights", exported["xml"], "--source", images_dir, "--warmup", "0", "--iters", "2",
             "--pipelined"],
            ["detect", "--weights", exported["onnx"], "--backend", "openvino", "--source", images_dir, "--nosave"]]
    code = ("import sys\nfrom ascend_slim.cli import main\n"
            f"for args in {[[str(a) for a in r] for r in runs]!r}:\n"
            "    assert main(args) == 0, args\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(list((tmp_path / "det").glob("*.jpg"))) == len(list(images_dir.glob("*.jpg")))


def test_latency_side_by_side_on_openvino(exported: dict[str, Path]) -> None:
    from ascend_slim.report.latency import measure_latency

    both = measure_latency([exported["onnx"], exported["xml"]], runs=2, warmup=1, runtime="openvino")
    assert [len(r.samples_ms) for r in both] == [2, 2] and all(r.median_ms > 0 for r in both)
    with pytest.raises(AscendSlimError, match="unknown runtime"):
        measure_latency([exported["onnx"]], runtime="tensorrt")


def test_report_compares_one_model_across_runtimes(exported: dict[str, Path], voc_root: Path, tmp_path: Path) -> None:
    data = voc_test_subset(tmp_path / "voc", voc_root, 20)
    out = cli("report", "--weights", exported["onnx"], "--runtimes", "--runs", 2, "--data", data,
              "--json", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    assert "onnxruntime" in out.stdout and "openvino" in out.stdout, out.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert [r["runtime"] for r in result["runtimes"]] == ["onnxruntime", "openvino"]
    for row in result["runtimes"]:
        assert set(row["latency_ms"]) == {"1 thread", "all cores"} and row["latency_ms"]["1 thread"] > 0
        assert row["map"]["ap50_voc07"] > 0.4
    ort_map, ov_map = (row["map"]["ap50_voc07"] for row in result["runtimes"])
    assert abs(ov_map - ort_map) <= 0.003
    assert "flags" in result["machine"]


def test_slim_for_openvino_times_quantizes_and_writes_an_ir(voc_root: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from train_helpers import voc_subset

    from ascend_slim.recipes.slim import SlimConfig, slim

    data = voc_subset(tmp_path / "voc", voc_root, 8)
    # selection: 30 other trainval images (apart from the evaluation split; an accuracy floor needs >= 30)
    ids = (voc_root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").read_text().split()[8:38]
    (data / "VOC2007" / "ImageSets" / "Main" / "pick.txt").write_text("\n".join(ids) + "\n")
    train = replace(SlimConfig().train, train_split="subset", val_split="subset", workers=0)
    config = SlimConfig(weights=str(yolov5n_pt), classes="voc", data=str(data), select_split="pick",
                        target_latency=None, max_drop=100.0, img_size=160, img_sizes=(128,), cuts=(), calib_images=4,
                        latency_model="flops", latency_runs=2, train=train, runtime="openvino",
                        save_dir=str(tmp_path / "run"))
    run = slim(config)
    # the floor admits everything: the fastest candidate (FLOPs, INT8 at half: no timing decides a test)
    assert run.chosen().precision == "int8"
    final = tmp_path / "run" / "final.xml"
    assert run.result("quantize").final_onnx == str(final) and final.with_suffix(".bin").is_file()
    _, meta = read_model(final)
    assert meta.history[-1]["action"] == "quantize_int8" and "nncf" in meta.history[-1]
    assert list((tmp_path / "run" / "plan" / "models").glob("*int8*.xml"))  # the plan's INT8 was NNCF's
    assert run.result("latency").runtime == "openvino"
    assert "Runtime: openvino" in (tmp_path / "run" / "report.md").read_text()
    with Detector(final) as detector:
        assert detector.backend.name == "openvino" and detector.img_size == (run.chosen().img_size,) * 2
    with pytest.raises(AscendSlimError, match="unknown runtime"):
        replace(config, runtime="tvm", save_dir=str(tmp_path / "x")).validated()


def test_format_and_suffix_mismatches_fail_before_any_work(exported: dict[str, Path], yolov5n_pt: Path,
                                                          voc_root: Path, tmp_path: Path) -> None:
    runs = {"the openvino quantizer writes a .xml file": ("quantize", "--onnx", exported["onnx"], "--runtime",
                                                          "openvino", "--calib-data", voc_root, "-o",
                                                          tmp_path / "q.onnx"),
            "--amct-config belongs to the onnxruntime route": ("quantize", "--onnx", exported["onnx"], "--runtime",
                                                               "openvino", "--calib-data", voc_root,
                                                               "--amct-config", tmp_path / "a.cfg"),
            "the openvino format is written as a .xml file": ("export", "--weights", yolov5n_pt, "--format",
                                                              "openvino", "-o", tmp_path / "m.onnx")}
    for message, args in runs.items():
        out = cli(*args)
        assert out.returncode == 1 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert list(tmp_path.iterdir()) == []
