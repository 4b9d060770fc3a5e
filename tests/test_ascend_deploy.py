"""`ascend-slim deploy` end to end on the official yolov5n checkpoint, remapped to VOC: the bundle, its ONNX, the
generated files' consistency with the model, convert.sh against the stand-in atc, and atomic replacement."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from test_ascend_atc import FAKE_ATC

from ascend_slim.ascend.aipp import parse_aipp, yolov5_aipp
from ascend_slim.ascend.atc import atc_command, inspect_onnx
from ascend_slim.ascend.bundle import AIPP_FILE, deploy, render_ascend_files
from ascend_slim.ascend.model_facts import om_meta, onnx_meta
from ascend_slim.ascend.pipelines import pipeline_chain
from ascend_slim.ascend.postprocess_cfg import Thresholds, parse_cfg
from ascend_slim.classes import VOC_CLASSES
from ascend_slim.cli import main as cli_main
from ascend_slim.errors import AscendSlimError

SIZE = 256
# Operators of a YOLOv5 raw-head graph that ATC converts at opset 11 (convolution stack, SiLU as x*sigmoid(x),
# SPPF max-pools, nearest 2x upsample, head reshape/transpose); nothing of the decode (ScatterND, Range, ...).
ATC_OPSET11_OPS = {"Conv", "Sigmoid", "Mul", "Add", "Concat", "MaxPool", "Resize", "Reshape", "Transpose",
                   "Constant", "Slice", "Split"}


@pytest.fixture(scope="module")
def bundle(yolov5n_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy") / "bundle"
    code = cli_main(["deploy", "--weights", str(yolov5n_pt), "--img", str(SIZE), "--soc", "Ascend310",
                     "--classes", "voc", "--conf-thres", "0.3", "--iou-thres", "0.45", "-o", str(out)])
    assert code == 0
    return out


def test_bundle_files_match_the_model(bundle: Path) -> None:
    onnx_path = bundle / "models/yolov5/model.onnx"
    meta = onnx_meta(onnx_path)
    assert meta.names == list(VOC_CLASSES) and meta.img_size == (SIZE, SIZE)
    files = render_ascend_files(meta, "model", inspect_onnx(onnx_path), soc="Ascend310",
                                detect=Thresholds(0.3, 0.3, 0.45), evaluate=Thresholds(0.01, 0.01, 0.45))
    written = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert written == {*files, "README.txt", "models/yolov5/model.onnx"}
    for rel_path, text in files.items():
        assert (bundle / rel_path).read_text() == text, rel_path
    assert os.access(bundle / "convert.sh", os.X_OK)
    assert not stat.S_IMODE((bundle / "models/yolov5/yolov5_eval.cfg").stat().st_mode) & 0o137  # <= 640
    assert "not run on Ascend hardware" in (bundle / "README.txt").read_text()

    # the facts the .om backends read equal the ONNX's, and the cfgs carry the model's anchors
    sidecar = om_meta(bundle / "models/yolov5/model.om")
    assert sidecar.names == meta.names and np.array_equal(sidecar.anchors, meta.anchors)
    for name, score in (("yolov5_detect.cfg", "0.3"), ("yolov5_tensorinfer_eval.cfg", "0.01")):
        cfg = parse_cfg((bundle / "models/yolov5" / name).read_text())
        assert [float(v) for v in cfg["BIASES"].split(",")] == meta.anchors.reshape(-1).tolist()
        assert int(cfg["BIASES_NUM"]) == meta.anchors.size and cfg["CLASS_NUM"] == "20"
        assert (cfg["SCORE_THRESH"], cfg["IOU_THRESH"]) == (score, "0.45")
    assert parse_aipp((bundle / AIPP_FILE).read_text()) == yolov5_aipp(SIZE, SIZE)
    for pipeline in (bundle / "pipeline").iterdir():
        doc = json.loads(pipeline.read_text())
        for element in pipeline_chain(doc):
            for key, value in doc["detection"][element].get("props", {}).items():
                if key in ("postProcessConfigPath", "labelPath"):
                    assert (bundle / value).is_file(), (pipeline.name, value)
                if key == "modelPath":
                    assert value == "models/yolov5/model.om"


def test_exported_onnx_is_atc_ready(bundle: Path) -> None:
    model = onnx.load(str(bundle / "models/yolov5/model.onnx"))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [11]
    inputs = [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input]
    assert inputs == [("images", [1, 3, SIZE, SIZE])]
    outputs = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert outputs == [[1, 3, SIZE // s, SIZE // s, 25] for s in (8, 16, 32)]
    ops = {n.op_type for n in model.graph.node}
    assert ops <= ATC_OPSET11_OPS, ops - ATC_OPSET11_OPS
    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
                 if n.op_type == "Constant"}
    constants.update({t.name: numpy_helper.to_array(t) for t in model.graph.initializer})
    for node in (n for n in model.graph.node if n.op_type == "Resize"):
        attrs = {a.name: a.s.decode() for a in node.attribute if a.s}
        assert attrs["mode"] == "nearest"
        assert constants[node.input[2]].tolist() == [1, 1, 2, 2]  # constant scales, no dynamic shape ops
    assert inspect_onnx(bundle / "models/yolov5/model.onnx").out_nodes is None


def test_convert_sh_runs_the_exact_command(bundle: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "atc").write_text(FAKE_ATC.format(python=sys.executable))
    (bin_dir / "atc").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_ATC_RECORD": str(tmp_path / "calls.jsonl")}
    run = subprocess.run(["bash", str(bundle / "convert.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "ATC run success" in run.stdout
    (argv,) = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    facts = inspect_onnx(bundle / "models/yolov5/model.onnx")
    assert ["atc", *argv] == atc_command("models/yolov5/model.onnx", "models/yolov5/model", "Ascend310", facts,
                                         AIPP_FILE)
    om = bundle / "models/yolov5/model.om"
    assert om.is_file()
    om.unlink()
    assert shlex.join(["atc", *argv]) in (bundle / "convert.sh").read_text().replace(" \\\n    ", " ")


def test_existing_bundle_needs_force(bundle: Path, yolov5n_pt: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "b"
    target.mkdir()
    (target / "keep.txt").write_text("user file")
    args = ["deploy", "--weights", str(yolov5n_pt), "--img", "128", "-o", str(target)]
    assert cli_main(args) == 1
    assert "pass --force" in capsys.readouterr().err
    assert (target / "keep.txt").is_file()
    assert cli_main([*args, "--force"]) == 0
    assert not (target / "keep.txt").exists() and (target / "models/yolov5/coco.names").is_file()
    assert onnx_meta(target / "models/yolov5/model.onnx").img_size == (128, 128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temp folders left beside it


def test_failed_deploy_leaves_nothing(yolov5n_pt: Path, tmp_path: Path) -> None:
    with pytest.raises(AscendSlimError, match="multiples of the model stride"):
        deploy(yolov5n_pt, tmp_path / "b", img_size=100)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp folder
    onnx_file = tmp_path / "x.onnx"
    onnx_file.write_bytes(b"x")
    with pytest.raises(AscendSlimError, match=r"needs a \.pt"):
        deploy(onnx_file, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_decoded_export_is_cut_at_the_raw_heads(yolov5n_pt: Path, tmp_path: Path) -> None:
    """An export with the decode subgraph needs --out_nodes; cutting the graph at those nodes gives exactly the
    raw heads of the raw export."""
    import onnxruntime as ort

    from ascend_slim.export import export_onnx
    from ascend_slim.model.checkpoint import load_weights

    model, _ = load_weights(yolov5n_pt)
    decoded = export_onnx(model, tmp_path / "decoded.onnx", img_size=128, head="decoded")
    raw = export_onnx(model, tmp_path / "raw.onnx", img_size=128, head="raw")
    nodes = inspect_onnx(decoded).out_nodes
    assert nodes is not None and len(nodes) == 3
    graph = onnx.load(str(decoded)).graph
    outputs = {n.name: n.output[0] for n in graph.node}
    cut = tmp_path / "cut.onnx"
    onnx.utils.extract_model(str(decoded), str(cut), ["images"], [outputs[n.rsplit(":", 1)[0]] for n in nodes])
    x = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (cut, raw)]
    for got, ref in zip(*(s.run(None, {"images": x}) for s in sessions)):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_mindx_decode_equals_yolov5_decode(bundle: Path, images_dir: Path, voc_root: Path) -> None:
    """The bundle's ONNX on real photos: the MindX postprocessor's definition (core mode "mindx") gives the same
    detections as YOLOv5's where the two agree: single label, objectness threshold = confidence threshold, no
    max-det overflow."""
    import onnxruntime as ort

    from ascend_slim import core
    from ascend_slim.imageio import read_image

    onnx_path = bundle / "models/yolov5/model.onnx"
    meta = onnx_meta(onnx_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    photos = [images_dir / "bus.jpg", images_dir / "zidane.jpg",
              *(voc_root / "VOC2007/JPEGImages" / f"{i}.jpg" for i in ("000001", "000004", "000009"))]
    tensor, _, _ = core.preprocess([read_image(p) for p in photos], meta.img_size)
    heads = [np.concatenate(parts) for parts in zip(*(session.run(None, {"images": t[None]}) for t in tensor))]
    total = 0
    for conf in (0.25, 0.05):
        args = (heads, meta.anchors, meta.strides, conf, 0.45)
        yolo = core.postprocess(*args, max_det=100_000, multi_label=False, mode="yolov5")
        mindx = core.postprocess(*args, max_det=None, mode="mindx", obj_thres=conf)
        for a, b in zip(yolo, mindx):
            a, b = (d[np.lexsort((d[:, 0], -d[:, 4], d[:, 5]))] for d in (a, b))
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-3)
            total += len(a)
    assert total > 20
