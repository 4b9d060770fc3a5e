"""INT8 quantization (onnxruntime static QDQ) of a small yolov5n export, calibrated on 8 VOC trainval images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest

from ascend_slim import AscendSlimError, Detector
from ascend_slim.cli import main
from ascend_slim.imageio import read_image
from ascend_slim.meta import ModelMeta
from ascend_slim.quant.calibration import LetterboxCalibrationReader, folder_images, voc_images
from ascend_slim.quant.static import first_convs, head_convs, load_float_model, quantize_model

IMG = 320


@pytest.fixture(scope="module")
def float_onnx(yolov5n_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official yolov5n (80 COCO classes) exported static at 320."""
    from ascend_slim.export import export_onnx
    from ascend_slim.model.checkpoint import load_weights

    model, _ = load_weights(yolov5n_pt)
    return export_onnx(model, tmp_path_factory.mktemp("float") / "yolov5n_320.onnx", img_size=IMG)


@pytest.fixture(scope="module")
def calib(voc_root: Path) -> list[Path]:
    return voc_images(voc_root, 8)


@pytest.fixture(scope="module")
def int8_onnx(float_onnx: Path, calib: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "yolov5n_320.int8.onnx"
    report = quantize_model(float_onnx, out, calib, method="minmax", progress=False)
    assert report.path == out and report.float_convs == 4 and report.quantized_convs == 56
    assert report.calibration_batches == 8
    return out


def meta_of(path: Path) -> ModelMeta:
    return ModelMeta.from_props({p.key: p.value for p in onnx.load(str(path)).metadata_props})


def test_detect_and_stem_convs_found(float_onnx: Path) -> None:
    model = onnx.load(str(float_onnx))
    assert head_convs(model) == [f"/model/model.24/m.{i}/Conv" for i in range(3)]
    assert first_convs(model) == ["/model/model.0/conv/Conv"]


def test_calibration_input_is_what_eval_feeds(float_onnx: Path, calib: list[Path]) -> None:
    """The reader's tensor equals the Detector's square-letterbox input for the same images."""
    meta = meta_of(float_onnx)
    reader = LetterboxCalibrationReader(calib[:3], meta, "images", progress=False)
    batches = list(iter(reader.get_next, None))
    assert len(batches) == 3 and reader.get_next() is None
    with Detector(float_onnx, rect=False) as det:
        expected = det.prepare([read_image(calib[2])]).tensor
    np.testing.assert_array_equal(batches[2]["images"], expected)
    reader.set_range(1, 2)
    np.testing.assert_array_equal(reader.get_next()["images"], batches[1]["images"])
    assert reader.get_next() is None


def test_calibration_batches_fill_a_static_batch(float_onnx: Path, calib: list[Path]) -> None:
    meta = meta_of(float_onnx)
    meta.batch = 2
    reader = LetterboxCalibrationReader(calib[:3], meta, "images", progress=False)
    assert reader.batches == [[0, 1], [2, 0]] and len(reader) == 2
    first, second = reader.get_next()["images"], reader.get_next()["images"]
    assert first.shape == second.shape == (2, 3, IMG, IMG)
    np.testing.assert_array_equal(second[1], first[0])


def test_int8_model_finds_the_bus(int8_onnx: Path, images_dir: Path) -> None:
    with Detector(int8_onnx) as det:
        labels = det.predict(images_dir / "bus.jpg").labels
    assert "bus" in labels and labels.count("person") >= 3


def test_int8_model_is_quantized_with_float_heads(int8_onnx: Path, float_onnx: Path) -> None:
    model = onnx.load(str(int8_onnx))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    session = ort.InferenceSession(str(int8_onnx), providers=["CPUExecutionProvider"])
    assert [(o.name, o.type) for o in session.get_outputs()] == [(f"head{i}", "tensor(float)") for i in range(3)]
    # the Detect convs keep float weights; all other convs read INT8 weights through DequantizeLinear
    producers = {out: n for n in model.graph.node for out in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.name in head_convs(model):
            assert inits[node.input[1]].data_type == onnx.TensorProto.FLOAT
    int8_weights = [producers[n.input[1]] for n in model.graph.node
                    if n.op_type == "Conv" and n.input[1] in producers]
    assert int8_weights and all(inits[dq.input[0]].data_type == onnx.TensorProto.INT8 for dq in int8_weights)
    assert int8_onnx.stat().st_size < 0.45 * float_onnx.stat().st_size


def test_metadata_survives_with_history(int8_onnx: Path, float_onnx: Path) -> None:
    before, after = meta_of(float_onnx), meta_of(int8_onnx)
    assert after.names == before.names and after.strides == before.strides
    np.testing.assert_array_equal(after.anchors, before.anchors)
    assert (after.img_size, after.head, after.batch, after.dynamic) == (before.img_size, before.head, 1, False)
    assert after.history[:-1] == before.history
    entry = after.history[-1]
    assert entry["action"] == "quantize_int8" and entry["calibration_images"] == 8
    assert entry["method"] == "minmax" and "per-channel" in entry["weights"]
    assert "/model/model.0/conv/Conv" in entry["float_nodes"]


def test_already_quantized_model_is_refused(int8_onnx: Path, calib: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "twice.onnx"
    with pytest.raises(AscendSlimError, match="already quantized"):
        quantize_model(int8_onnx, out, calib, progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_edited_model_with_an_unused_initializer(float_onnx: Path, calib: list[Path], tmp_path: Path) -> None:
    """A hand-edited export (an initializer nothing reads) quantizes; onnxruntime's pre-pass used to crash on it."""
    model = onnx.load(str(float_onnx))
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((4, 4), np.float32), "unused_weight"))
    edited = tmp_path / "edited.onnx"
    onnx.save(model, str(edited))
    report = quantize_model(edited, tmp_path / "edited.int8.onnx", calib[:2], method="minmax", progress=False)
    assert report.quantized_convs > 0 and (tmp_path / "edited.int8.onnx").is_file()


def test_foreign_model_is_refused(float_onnx: Path, calib: list[Path], tmp_path: Path) -> None:
    model = onnx.load(str(float_onnx))
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    with pytest.raises(AscendSlimError, match="no ascend-slim model facts"):
        quantize_model(foreign, tmp_path / "out.onnx", calib, progress=False)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(AscendSlimError, match="cannot read ONNX model"):
        load_float_model(junk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.onnx", "junk.onnx"]


def test_bad_options_are_refused(float_onnx: Path, calib: list[Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AscendSlimError, match="are not in the model: /model/nope"):
        quantize_model(float_onnx, tmp_path / "a.onnx", calib, exclude=["/model/nope"], progress=False)
    with pytest.raises(AscendSlimError, match="unknown calibration method"):
        quantize_model(float_onnx, tmp_path / "b.onnx", calib, method="kl", progress=False)
    monkeypatch.setattr(ort, "__version__", "1.26.3")
    with pytest.raises(AscendSlimError, match=r"needs onnxruntime >= 1.27, found 1.26.3"):
        quantize_model(float_onnx, tmp_path / "c.onnx", calib, progress=False)
    assert not list(tmp_path.iterdir())


def test_calibration_image_sources(voc_root: Path, images_dir: Path, tmp_path: Path) -> None:
    assert [p.name for p in folder_images(images_dir, 2)] == ["bus.jpg", "zidane.jpg"]
    with pytest.raises(AscendSlimError, match=r"has 2 image\(s\), fewer than the 8 asked for"):
        folder_images(images_dir, 8)
    with pytest.raises(AscendSlimError, match="no images"):
        folder_images(tmp_path, 1)
    with pytest.raises(AscendSlimError, match="calibration folder not found"):
        folder_images(tmp_path / "missing", 1)
    with pytest.raises(AscendSlimError, match="held out"):
        voc_images(voc_root, 8, split="test")
    with pytest.raises(AscendSlimError, match=r"VOC2007 trainval has 269 image\(s\), fewer than the 1000"):
        voc_images(voc_root, 1000)


# -- the CLI --------------------------------------------------------------------------------------------------------
def test_cli_quantize_writes_model_and_amct_config(float_onnx: Path, images_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    code = main(["quantize", "--onnx", str(float_onnx), "--calib", str(images_dir), "--num-images", "2",
                 "--no-per-channel", "--exclude", "/model/model.1/conv/Conv", "--amct-config", str(out / "amct.cfg"),
                 "-o", str(out / "m.int8.onnx")])
    printed = capsys.readouterr().out
    assert code == 0 and "2 images of" in printed and "per-tensor" in printed
    assert sorted(p.name for p in out.iterdir()) == ["amct.cfg", "m.int8.onnx"]
    entry = meta_of(out / "m.int8.onnx").history[-1]
    assert entry["method"] == "percentile" and entry["calibration_images"] == 2
    assert "/model/model.1/conv/Conv" in entry["float_nodes"] and len(entry["float_nodes"]) == 5
    amct = (out / "amct.cfg").read_text()
    assert 'skip_layers : "/model/model.1/conv/Conv"' in amct and "batch_num : 2" in amct
    assert "channel_wise : false" in amct


@pytest.mark.parametrize("case", ["quantized", "empty", "too_few", "foreign", "test_split"])
def test_cli_bad_input_one_line_nothing_written(case: str, float_onnx: Path, int8_onnx: Path, images_dir: Path,
                                                 voc_root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(float_onnx))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    onnx_path, source, expected = {
        "quantized": (int8_onnx, ["--calib", str(images_dir), "--num-images", "2"], "is already quantized"),
        "empty": (float_onnx, ["--calib", str(empty)], "no images"),
        "too_few": (float_onnx, ["--calib", str(images_dir), "--num-images", "5"],
                    r"has 2 image\(s\), fewer than the 5 asked for"),
        "foreign": (foreign, ["--calib", str(images_dir), "--num-images", "2"], "no ascend-slim model facts"),
        "test_split": (float_onnx, ["--calib-data", str(voc_root), "--calib-split", "test"], "held out"),
    }[case]
    out = tmp_path / "out"
    code = main(["quantize", "--onnx", str(onnx_path), *source, "--amct-config", str(out / "amct.cfg"),
                 "-o", str(out / "m.int8.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("ascend-slim quantize: error: ")
    assert re.search(expected, err[0])
    assert not out.exists() or not list(out.iterdir())
