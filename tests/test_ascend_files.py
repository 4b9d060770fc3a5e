"""Generated Ascend files: AIPP config, MindX postprocess cfgs, labels, pipelines, and the committed defaults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ascend_slim.ascend.aipp import AippConfig, parse_aipp, render_aipp, yolov5_aipp
from ascend_slim.ascend.bundle import default_files, default_meta
from ascend_slim.ascend.model_facts import head_shapes, om_meta
from ascend_slim.ascend.pipelines import (
    MODELINFER_LIB,
    RTSP_URL_PLACEHOLDER,
    TENSORINFER_LIB,
    ModelFiles,
    fill_rtsp_url,
    pipeline_chain,
    video_pipeline,
)
from ascend_slim.ascend.postprocess_cfg import (
    EVAL_THRESHOLDS,
    Thresholds,
    parse_cfg,
    postprocess_cfg,
    render_cfg,
)
from ascend_slim.classes import COCO_CLASSES, VOC_CLASSES
from ascend_slim.errors import AscendSlimError
from ascend_slim.meta import ModelMeta

REPO_ROOT = Path(__file__).resolve().parent.parent

# Documented plugin names (ascend-formats.md §2.2-2.4) and the props each must carry here.
REQUIRED_PROPS = {
    "appsrc": {"blocksize"},
    "mxpi_rtspsrc": {"rtspUrl", "channelId"},
    "mxpi_videodecoder": {"inputVideoFormat", "outputImageFormat", "vdecChannelId"},
    "mxpi_imagedecoder": set(),
    "mxpi_imageresize": {"parentName", "resizeHeight", "resizeWidth", "resizeType"},
    "mxpi_modelinfer": {"parentName", "modelPath", "postProcessConfigPath", "labelPath", "postProcessLibPath"},
    "mxpi_tensorinfer": {"dataSource", "modelPath"},
    "mxpi_objectpostprocessor": {"dataSource", "postProcessConfigPath", "labelPath", "postProcessLibPath"},
    "mxpi_dataserialize": {"outputDataKeys"},
    "appsink": {"blocksize"},
}


def test_committed_defaults_equal_generator_output() -> None:
    files = default_files()
    for rel_path, text in files.items():
        committed = REPO_ROOT / rel_path
        assert committed.is_file(), f"{rel_path} missing: run ascend-slim deploy --write-defaults ."
        assert committed.read_text(encoding="utf-8") == text, f"{rel_path} differs from the generator's output"
    ascend_files = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "pipeline").iterdir()}
    assert ascend_files == {p for p in files if p.startswith("pipeline/")}


def test_sample_cfg_values() -> None:
    """The default modelinfer cfgs carry exactly the sample's documented keys and values (§3.1)."""
    files = default_files()
    common = {"CLASS_NUM": "20", "BIASES_NUM": "18",
              "BIASES": "10,13,16,30,33,23,30,61,62,45,59,119,116,90,156,198,373,326",
              "IOU_THRESH": "0.5", "YOLO_TYPE": "3", "ANCHOR_DIM": "3", "MODEL_TYPE": "1", "RESIZE_FLAG": "0"}
    assert parse_cfg(files["models/yolov5/yolov5_detect.cfg"]) == {
        **common, "SCORE_THRESH": "0.4", "OBJECTNESS_THRESH": "0.4"}
    assert parse_cfg(files["models/yolov5/yolov5_eval.cfg"]) == {
        **common, "SCORE_THRESH": "0.01", "OBJECTNESS_THRESH": "0.01"}
    tensorinfer = parse_cfg(files["models/yolov5/yolov5_tensorinfer_eval.cfg"])
    assert tensorinfer == {**common, "SCORE_THRESH": "0.01", "OBJECTNESS_THRESH": "0.01", "MODEL_TYPE": "2",
                           "YOLO_VERSION": "5", "FRAMEWORK": "PyTorch"}
    assert files["models/yolov5/voc.names"].splitlines() == list(VOC_CLASSES)


@pytest.mark.parametrize("route", ["modelinfer", "tensorinfer"])
def test_cfg_consistent_with_model(route: str) -> None:
    # COCO classes, anchors with fractions (autoanchor), strides listed largest first
    anchors = np.array([[[116.5, 90], [156, 198.25], [373, 326]], [[30, 61], [62, 45.5], [59, 119]],
                        [[10, 13], [16, 30], [33, 23.75]]], np.float32)
    meta = ModelMeta(names=list(COCO_CLASSES), strides=[32, 16, 8], anchors=anchors, img_size=(640, 640))
    cfg = parse_cfg(render_cfg(postprocess_cfg(meta, Thresholds(0.25, 0.3, 0.45), route)))
    values = [float(v) for v in cfg["BIASES"].split(",")]
    assert int(cfg["BIASES_NUM"]) == len(values) == 18
    assert values == anchors[::-1].reshape(-1).tolist()  # smallest stride first
    assert int(cfg["CLASS_NUM"]) == 80 and int(cfg["YOLO_TYPE"]) == 3
    channels = {shape[1] * shape[4] for shape in head_shapes(meta)}
    assert channels == {int(cfg["ANCHOR_DIM"]) * (int(cfg["CLASS_NUM"]) + 5)}
    assert (cfg["SCORE_THRESH"], cfg["OBJECTNESS_THRESH"], cfg["IOU_THRESH"]) == ("0.25", "0.3", "0.45")
    assert cfg["MODEL_TYPE"] == {"modelinfer": "1", "tensorinfer": "2"}[route]
    assert ("YOLO_VERSION" in cfg) == (route == "tensorinfer")


def test_cfg_rejects_bad_input() -> None:
    with pytest.raises(AscendSlimError, match=r"outside 0\.\.1"):
        Thresholds(1.5, 0.1, 0.5)
    with pytest.raises(AscendSlimError, match="unknown MindX route"):
        postprocess_cfg(default_meta(), EVAL_THRESHOLDS, "modelinfer2")
    with pytest.raises(AscendSlimError, match="KEY=value"):
        parse_cfg("CLASS_NUM 20\n")


def test_aipp_config_values_and_round_trip() -> None:
    text = default_files()["models/yolov5/aipp_yolov5.cfg"]
    cfg = parse_aipp(text)
    assert cfg == yolov5_aipp(512, 512)
    assert cfg.input_format == "YUV420SP_U8" and cfg.csc_switch and not cfg.rbuv_swap_switch
    assert (cfg.width, cfg.height) == (512, 512)
    assert cfg.matrix == (256, 0, 359, 256, -88, -183, 256, 454, 0)
    assert cfg.input_bias == (0, 128, 128)
    assert all(abs(v - 1 / 255) < 1e-15 for v in cfg.var_reci)
    assert "aipp_mode : static" in text and "csc_switch : true" in text
    custom = AippConfig(width=320, height=256, mean=(1, 2, 3), min=(0.5, 0.0, 0.25), rbuv_swap_switch=True)
    assert parse_aipp("# comment\n" + render_aipp(custom)) == custom


@pytest.mark.parametrize("text, message", [
    ("aipp_op { aipp_mode : dynamic\n src_image_size_w : 8\n src_image_size_h : 8 }", "static"),
    ("aipp_op { src_image_size_w : 8 }", "missing"),
    ("nothing here", "no 'aipp_op"),
    ("aipp_op {\n input_format YUV420SP_U8\n}", "key : value"),
    ("aipp_op { src_image_size_w : 7\n src_image_size_h : 8 }", "even"),
])
def test_aipp_parse_errors(text: str, message: str) -> None:
    with pytest.raises(AscendSlimError, match=message):
        parse_aipp(text)


def _pipelines() -> dict[str, dict]:
    return {p: json.loads(t) for p, t in default_files().items() if p.endswith(".pipeline")}


@pytest.mark.parametrize("name", sorted(_pipelines()))
def test_pipelines_are_valid_chains(name: str) -> None:
    files = default_files()
    doc = _pipelines()[name]
    chain = pipeline_chain(doc)
    body = doc["detection"]
    assert chain[0] == ("mxpi_rtspsrc0" if name.endswith("video.pipeline") else "appsrc0") and chain[-1] == "appsink0"
    assert body["stream_config"] == {"deviceId": "0"}
    factories = [body[e]["factory"] for e in chain]
    for element in chain:
        factory, props = body[element]["factory"], body[element].get("props", {})
        assert factory in REQUIRED_PROPS
        assert REQUIRED_PROPS[factory] <= set(props), (element, props)
        assert all(isinstance(v, str) for v in props.values())
        for key in ("parentName", "dataSource"):
            if key in props:  # points at the element right before it
                assert chain[chain.index(element) - 1] == props[key]
        for key in ("postProcessConfigPath", "labelPath"):
            if key in props:
                assert props[key] in files, props[key]
    tensorinfer, task = "tensorinfer" in name, name.split("/")[-1].split(".")[0].split("_")[0]
    if name.endswith("raw_tensor.pipeline"):
        assert factories == ["appsrc", "mxpi_imagedecoder", "mxpi_tensorinfer", "appsink"]
        return
    if name.endswith("video.pipeline"):
        return  # test_video_pipeline
    infer = ["mxpi_tensorinfer", "mxpi_objectpostprocessor"] if tensorinfer else ["mxpi_modelinfer"]
    resize = ["mxpi_imageresize"] if task == "detect" else []
    assert factories == ["appsrc", "mxpi_imagedecoder", *resize, *infer, "mxpi_dataserialize", "appsink"]
    post = body[chain[-3]]["props"]
    assert body["mxpi_dataserialize0"]["props"]["outputDataKeys"] == chain[-3]
    assert post["postProcessLibPath"] == (TENSORINFER_LIB if tensorinfer else MODELINFER_LIB)
    cfg = parse_cfg(files[post["postProcessConfigPath"]])
    assert cfg["SCORE_THRESH"] == ("0.4" if task == "detect" else "0.01")
    assert cfg["MODEL_TYPE"] == ("2" if tensorinfer else "1")
    if resize:
        props = body["mxpi_imageresize0"]["props"]
        assert (props["resizeHeight"], props["resizeWidth"], props["resizeType"]) == (
            "512", "512", "Resizer_KeepAspectRatio_Fit")


def test_video_pipeline() -> None:
    """RTSP source -> video decoder -> the detect resize -> model inference -> YOLOv5 postprocess -> serialize ->
    appsink, every plugin's props as documented (VSDK plugin reference) and as the detect pipelines set them."""
    files = default_files()
    doc = json.loads(files["pipeline/video.pipeline"])
    chain = pipeline_chain(doc)
    body = doc["detection"]
    assert chain == ["mxpi_rtspsrc0", "mxpi_videodecoder0", "mxpi_imageresize0", "mxpi_tensorinfer0",
                     "mxpi_objectpostprocessor0", "mxpi_dataserialize0", "appsink0"]
    assert [body[e]["factory"] for e in chain] == [e[:-1] for e in chain]
    assert body["stream_config"] == {"deviceId": "0"}
    props = {e: body[e].get("props", {}) for e in chain}
    assert props["mxpi_rtspsrc0"] == {"rtspUrl": RTSP_URL_PLACEHOLDER, "channelId": "0"}
    assert props["mxpi_videodecoder0"] == {"inputVideoFormat": "H264", "outputImageFormat": "YUV420SP_NV12",
                                           "vdecChannelId": "0"}
    # the same letterbox contract as the image detect pipelines: aspect-preserving resize to the model size
    detect = json.loads(files["pipeline/detect_tensorinfer.pipeline"])["detection"]
    assert props["mxpi_imageresize0"] == {**detect["mxpi_imageresize0"]["props"], "parentName": "mxpi_videodecoder0"}
    assert props["mxpi_tensorinfer0"] == {"dataSource": "mxpi_imageresize0", "modelPath": "models/yolov5/yolov5s.om"}
    assert props["mxpi_objectpostprocessor0"] == detect["mxpi_objectpostprocessor0"]["props"]
    assert parse_cfg(files[props["mxpi_objectpostprocessor0"]["postProcessConfigPath"]])["SCORE_THRESH"] == "0.4"
    assert props["mxpi_dataserialize0"] == {"outputDataKeys": "mxpi_objectpostprocessor0"}
    assert props["appsink0"] == {"blocksize": "4096000"}
    # the model's AIPP takes NV12 of model size, what the resizer hands on
    assert parse_aipp(files["models/yolov5/aipp_yolov5.cfg"]).input_format == "YUV420SP_U8"

    filled = fill_rtsp_url(doc, "rtsp://10.0.0.5:554/cam1")
    assert filled["detection"]["mxpi_rtspsrc0"]["props"]["rtspUrl"] == "rtsp://10.0.0.5:554/cam1"
    assert doc["detection"]["mxpi_rtspsrc0"]["props"]["rtspUrl"] == RTSP_URL_PLACEHOLDER  # a copy
    with pytest.raises(AscendSlimError, match="no mxpi_rtspsrc0"):
        fill_rtsp_url(json.loads(files["pipeline/detect.pipeline"]), "rtsp://x")
    meta = default_meta(320)
    model_files = ModelFiles(om="m.om", label="l.names", detect_cfg="d.cfg", eval_cfg="e.cfg")
    h265 = video_pipeline(model_files, resize_to=meta.img_size, rtsp_url="rtsp://cam", video_format="H265",
                          channel_id=3, device_id=1, route="modelinfer")["detection"]
    assert [e for e in pipeline_chain({"detection": h265})][3:] == ["mxpi_modelinfer0", "mxpi_dataserialize0",
                                                                    "appsink0"]
    assert (h265["mxpi_videodecoder0"]["props"]["inputVideoFormat"], h265["mxpi_videodecoder0"]["props"]
            ["vdecChannelId"], h265["mxpi_rtspsrc0"]["props"]["channelId"]) == ("H265", "3", "3")
    assert h265["mxpi_imageresize0"]["props"]["resizeHeight"] == "320" and h265["stream_config"]["deviceId"] == "1"
    with pytest.raises(AscendSlimError, match="H264 or H265"):
        video_pipeline(model_files, resize_to=(320, 320), video_format="MJPEG")


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b["mxpi_imagedecoder0"].update(next="nowhere"), "not defined"),
    (lambda b: b["mxpi_tensorinfer0"].update(next="appsrc0"), "loops"),
    (lambda b: b["appsink0"]["props"].update(blocksize=4096000), "non-string"),
    (lambda b: b.update(extra0={"factory": "appsink"}), "not on the"),
    (lambda b: b["mxpi_tensorinfer0"].pop("next"), "no single 'next'"),
    (lambda b: b.update(mxpi_rtspsrc0={"factory": "mxpi_rtspsrc", "next": "appsink0"}), "exactly one source"),
])
def test_pipeline_chain_rejects_broken_graphs(mutate, message: str) -> None:
    doc = _pipelines()["pipeline/raw_tensor.pipeline"]
    mutate(doc["detection"])
    with pytest.raises(AscendSlimError, match=message):
        pipeline_chain(doc)


def test_sidecar_facts_are_read_for_om(tmp_path: Path) -> None:
    files = default_files()
    (tmp_path / "yolov5s.json").write_text(files["models/yolov5/yolov5s.json"])
    meta = om_meta(tmp_path / "yolov5s.om")
    assert meta.names == list(VOC_CLASSES) and meta.img_size == (512, 512)
    assert np.array_equal(meta.anchors, default_meta().anchors)
    with pytest.raises(AscendSlimError, match="no model facts"):
        om_meta(tmp_path / "other.om")
