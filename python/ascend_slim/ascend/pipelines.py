"""MindX SDK stream pipelines (JSON) for the detect and eval flows of both routes, the raw-tensor one and the
video one (RTSP camera in).

A pipeline is ``{stream: {"stream_config": {...}, element: {"factory", "props", "next"}}}``; every prop value
is a string. Elements are chained from the source (``appsrc0``, or ``mxpi_rtspsrc0`` for video) to ``appsink0``
by ``next``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import AscendSlimError

STREAM_NAME = "detection"
MODELINFER_LIB = "libMpYOLOv5PostProcessor.so"
TENSORINFER_LIB = "libyolov3postprocess.so"
RAW_TENSOR_ELEMENT = "mxpi_tensorinfer0"
SOURCES = ("appsrc0", "mxpi_rtspsrc0")  # the input elements a chain starts from (SendData / an RTSP pull)
RTSP_URL_PLACEHOLDER = "${rtspUrl}"  # the SDK docs' convention for values filled in before CreateMultipleStreams
VIDEO_FORMATS = ("H264", "H265")  # what mxpi_rtspsrc pulls and mxpi_videodecoder decodes


@dataclass(frozen=True)
class ModelFiles:
    """Paths written into the pipelines, relative to the folder the application runs in (or absolute)."""

    om: str
    label: str
    detect_cfg: str
    eval_cfg: str


def _chain(stream: list[tuple[str, str, dict[str, str]]], device_id: int) -> dict:
    """Build the stream dict of elements ``(name, factory, props)`` linked in the given order."""
    body: dict = {"stream_config": {"deviceId": str(device_id)}}
    for i, (name, factory, props) in enumerate(stream):
        element: dict = {"factory": factory}
        if props:
            element["props"] = {k: str(v) for k, v in props.items()}
        if i + 1 < len(stream):
            element["next"] = stream[i + 1][0]
        body[name] = element
    return {STREAM_NAME: body}


def _resize(parent: str, resize_to: tuple[int, int]) -> tuple[str, str, dict[str, str]]:
    """The detect flow's letterbox on the device: aspect-preserving resize to the model size (h, w)."""
    h, w = resize_to
    return ("mxpi_imageresize0", "mxpi_imageresize", {
        "parentName": parent, "resizeHeight": str(h), "resizeWidth": str(w),
        "resizeType": "Resizer_KeepAspectRatio_Fit",
    })


def _front(resize_to: tuple[int, int] | None) -> list[tuple[str, str, dict[str, str]]]:
    """appsrc -> DVPP JPEG decoder [-> aspect-preserving resizer]."""
    front = [("appsrc0", "appsrc", {"blocksize": "409600"}), ("mxpi_imagedecoder0", "mxpi_imagedecoder", {})]
    if resize_to is not None:
        front.append(_resize("mxpi_imagedecoder0", resize_to))
    return front


def _infer(route: str, upstream: str, files: ModelFiles, cfg: str) -> list[tuple[str, str, dict[str, str]]]:
    """Model inference and the SDK's YOLOv5 postprocess of ``route`` on ``upstream``'s images."""
    if route == "modelinfer":
        return [("mxpi_modelinfer0", "mxpi_modelinfer", {
            "parentName": upstream, "modelPath": files.om, "postProcessConfigPath": cfg,
            "labelPath": files.label, "postProcessLibPath": MODELINFER_LIB,
        })]
    if route == "tensorinfer":
        return [
            (RAW_TENSOR_ELEMENT, "mxpi_tensorinfer", {"dataSource": upstream, "modelPath": files.om}),
            ("mxpi_objectpostprocessor0", "mxpi_objectpostprocessor", {
                "dataSource": RAW_TENSOR_ELEMENT, "postProcessConfigPath": cfg, "labelPath": files.label,
                "postProcessLibPath": TENSORINFER_LIB,
            }),
        ]
    raise AscendSlimError(f"unknown MindX route {route!r}: choose modelinfer or tensorinfer")


def _sink(source: str) -> list[tuple[str, str, dict[str, str]]]:
    return [("mxpi_dataserialize0", "mxpi_dataserialize", {"outputDataKeys": source}),
            ("appsink0", "appsink", {"blocksize": "4096000"})]


def detection_pipeline(route: str, files: ModelFiles, *, resize_to: tuple[int, int] | None,
                       device_id: int = 0) -> dict:
    """A detect (``resize_to`` = model (h, w): DVPP resizes) or eval (``None``: host letterbox) pipeline.

    ``modelinfer`` reproduces the sample (one ``mxpi_modelinfer`` with ``libMpYOLOv5PostProcessor.so``);
    ``tensorinfer`` uses ``mxpi_tensorinfer`` + ``mxpi_objectpostprocessor`` with ``libyolov3postprocess.so``.
    Results come out of ``appsink0`` as the ``mxpi_dataserialize`` JSON (``GetResult``).
    """
    front = _front(resize_to)
    infer = _infer(route, front[-1][0], files, files.detect_cfg if resize_to is not None else files.eval_cfg)
    return _chain([*front, *infer, *_sink(infer[-1][0])], device_id)


def video_pipeline(files: ModelFiles, *, resize_to: tuple[int, int], rtsp_url: str = RTSP_URL_PLACEHOLDER,
                   route: str = "tensorinfer", video_format: str = "H264", channel_id: int = 0,
                   device_id: int = 0) -> dict:
    """An RTSP camera through the device: ``mxpi_rtspsrc`` pulls the H.264/H.265 stream, ``mxpi_videodecoder``
    (VDEC) decodes each frame to NV12, then the detect flow: the same aspect-preserving resize to the model size
    ``resize_to`` (h, w), the same .om (its AIPP takes NV12 of model size to RGB/255), the SDK's YOLOv5
    postprocess (boxes in frame pixels), ``mxpi_dataserialize`` JSON out of ``appsink0``, one result per frame
    (``GetResult``). ``rtsp_url`` defaults to the placeholder ``${rtspUrl}``, filled in before the stream is
    created; ``channel_id`` numbers the pull and the decoder channel (one per camera).
    """
    if video_format not in VIDEO_FORMATS:
        raise AscendSlimError(f"video format {video_format!r}: mxpi_videodecoder takes {' or '.join(VIDEO_FORMATS)}")
    front = [
        ("mxpi_rtspsrc0", "mxpi_rtspsrc", {"rtspUrl": rtsp_url, "channelId": str(channel_id)}),
        ("mxpi_videodecoder0", "mxpi_videodecoder", {
            "inputVideoFormat": video_format, "outputImageFormat": "YUV420SP_NV12", "vdecChannelId": str(channel_id),
        }),
        _resize("mxpi_videodecoder0", resize_to),
    ]
    infer = _infer(route, front[-1][0], files, files.detect_cfg)
    return _chain([*front, *infer, *_sink(infer[-1][0])], device_id)


def fill_rtsp_url(doc: dict, url: str, stream: str = STREAM_NAME) -> dict:
    """A copy of a video pipeline with its ``rtspUrl`` set to ``url``."""
    source = doc.get(stream, {}).get("mxpi_rtspsrc0")
    if not isinstance(source, dict):
        raise AscendSlimError("not a video pipeline: it has no mxpi_rtspsrc0 element")
    filled = json.loads(json.dumps(doc))
    filled[stream]["mxpi_rtspsrc0"].setdefault("props", {})["rtspUrl"] = url
    return filled


def raw_tensor_pipeline(om: str, device_id: int = 0) -> dict:
    """JPEG of model size -> DVPP decode -> ``mxpi_tensorinfer`` -> ``appsink0``; the heads are read as an
    ``MxpiTensorPackageList`` with ``GetProtobuf(stream, 0, [mxpi_tensorinfer0])`` and decoded on the host."""
    infer = (RAW_TENSOR_ELEMENT, "mxpi_tensorinfer", {"dataSource": "mxpi_imagedecoder0", "modelPath": om})
    return _chain([*_front(None), infer, ("appsink0", "appsink", {"blocksize": "4096000"})], device_id)


def render_pipeline(doc: dict) -> str:
    return json.dumps(doc, indent=4) + "\n"


def pipeline_chain(doc: dict, stream: str = STREAM_NAME) -> list[str]:
    """Element names from the source (``appsrc0`` or ``mxpi_rtspsrc0``) to ``appsink0`` following ``next``;
    raises on a broken or cyclic graph, an element without ``factory``, a non-string prop or an element that is
    not on the chain."""
    body = doc.get(stream)
    if not isinstance(body, dict):
        raise AscendSlimError(f"pipeline has no stream {stream!r}")
    elements = {k: v for k, v in body.items() if k != "stream_config"}
    for name, element in elements.items():
        if not isinstance(element, dict) or not isinstance(element.get("factory"), str):
            raise AscendSlimError(f"pipeline element {name!r} has no factory")
        props = element.get("props", {})
        if not all(isinstance(v, str) for v in props.values()):
            raise AscendSlimError(f"pipeline element {name!r} has non-string props")
    sources = [name for name in SOURCES if name in elements]
    if len(sources) != 1:
        raise AscendSlimError(f"pipeline needs exactly one source element ({' or '.join(SOURCES)}), has "
                              f"{', '.join(sources) or 'none'}")
    chain, name = [], sources[0]
    while True:
        if name not in elements:
            raise AscendSlimError(f"pipeline element {name!r} is referenced but not defined")
        if name in chain:
            raise AscendSlimError(f"pipeline loops back to {name!r}")
        chain.append(name)
        if name == "appsink0":
            break
        nxt = elements[name].get("next")
        if not isinstance(nxt, str):
            raise AscendSlimError(f"pipeline element {name!r} has no single 'next' towards appsink0")
        name = nxt
    unused = sorted(set(elements) - set(chain))
    if unused:
        raise AscendSlimError(f"pipeline elements not on the {chain[0]} -> appsink0 chain: {', '.join(unused)}")
    return chain
