"""MindX SDK stream pipelines (JSON) for the detect and eval flows of both routes, and the raw-tensor one.

A pipeline is ``{stream: {"stream_config": {...}, element: {"factory", "props", "next"}}}``; every prop value
is a string. Elements are chained from ``appsrc0`` to ``appsink0`` by ``next``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import AscendSlimError

STREAM_NAME = "detection"
MODELINFER_LIB = "libMpYOLOv5PostProcessor.so"
TENSORINFER_LIB = "libyolov3postprocess.so"
RAW_TENSOR_ELEMENT = "mxpi_tensorinfer0"


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


def _front(resize_to: tuple[int, int] | None) -> list[tuple[str, str, dict[str, str]]]:
    """appsrc -> DVPP JPEG decoder [-> aspect-preserving resizer]."""
    front = [("appsrc0", "appsrc", {"blocksize": "409600"}), ("mxpi_imagedecoder0", "mxpi_imagedecoder", {})]
    if resize_to is not None:
        h, w = resize_to
        front.append(("mxpi_imageresize0", "mxpi_imageresize", {
            "parentName": "mxpi_imagedecoder0", "resizeHeight": str(h), "resizeWidth": str(w),
            "resizeType": "Resizer_KeepAspectRatio_Fit",
        }))
    return front


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
    upstream = front[-1][0]
    cfg = files.detect_cfg if resize_to is not None else files.eval_cfg
    if route == "modelinfer":
        infer = [("mxpi_modelinfer0", "mxpi_modelinfer", {
            "parentName": upstream, "modelPath": files.om, "postProcessConfigPath": cfg,
            "labelPath": files.label, "postProcessLibPath": MODELINFER_LIB,
        })]
    elif route == "tensorinfer":
        infer = [
            (RAW_TENSOR_ELEMENT, "mxpi_tensorinfer", {"dataSource": upstream, "modelPath": files.om}),
            ("mxpi_objectpostprocessor0", "mxpi_objectpostprocessor", {
                "dataSource": RAW_TENSOR_ELEMENT, "postProcessConfigPath": cfg, "labelPath": files.label,
                "postProcessLibPath": TENSORINFER_LIB,
            }),
        ]
    else:
        raise AscendSlimError(f"unknown MindX route {route!r}: choose modelinfer or tensorinfer")
    return _chain([*front, *infer, *_sink(infer[-1][0])], device_id)


def raw_tensor_pipeline(om: str, device_id: int = 0) -> dict:
    """JPEG of model size -> DVPP decode -> ``mxpi_tensorinfer`` -> ``appsink0``; the heads are read as an
    ``MxpiTensorPackageList`` with ``GetProtobuf(stream, 0, [mxpi_tensorinfer0])`` and decoded on the host."""
    infer = (RAW_TENSOR_ELEMENT, "mxpi_tensorinfer", {"dataSource": "mxpi_imagedecoder0", "modelPath": om})
    return _chain([*_front(None), infer, ("appsink0", "appsink", {"blocksize": "4096000"})], device_id)


def render_pipeline(doc: dict) -> str:
    return json.dumps(doc, indent=4) + "\n"


def pipeline_chain(doc: dict, stream: str = STREAM_NAME) -> list[str]:
    """Element names from ``appsrc0`` to ``appsink0`` following ``next``; raises on a broken or cyclic graph,
    an element without ``factory``, a non-string prop or an element that is not on the chain."""
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
    chain, name = [], "appsrc0"
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
        raise AscendSlimError(f"pipeline elements not on the appsrc0 -> appsink0 chain: {', '.join(unused)}")
    return chain
