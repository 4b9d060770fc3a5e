"""MindX SDK backends (``StreamManagerApi``).

* :class:`MindXBackend` (``--backend mindx``): each letterboxed RGB image is JPEG-encoded and sent through the
  raw-tensor pipeline (DVPP decode -> AIPP -> ``mxpi_tensorinfer``); the heads come back as an
  ``MxpiTensorPackageList`` and are decoded by the C++ core like on every other backend.
* :class:`MindXObjectRoute`: the SDK's own YOLOv5 postprocessor (eval pipeline of either route), returning
  its ``MxpiObject`` list as ``Kx6`` detections in letterbox pixels.
* :class:`MindXVideoRoute`: the video pipeline (an RTSP camera decoded and detected on the device), one
  ``Kx6`` result in frame pixels per frame.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from ..ascend.model_facts import head_shapes, om_meta
from ..ascend.pipelines import (
    RAW_TENSOR_ELEMENT,
    STREAM_NAME,
    ModelFiles,
    detection_pipeline,
    raw_tensor_pipeline,
    render_pipeline,
    video_pipeline,
)
from ..ascend.postprocess_cfg import (
    DETECT_THRESHOLDS,
    EVAL_THRESHOLDS,
    Thresholds,
    postprocess_cfg,
    render_cfg,
    render_labels,
)
from ..ascend.sdk import import_sdk
from ..errors import AscendSlimError
from ..limits import STREAM_TIMEOUT_S
from ..meta import ModelMeta
from .base import Backend

STREAM = STREAM_NAME.encode()
_Route = TypeVar("_Route", bound="_PostprocessRoute")


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of an RGB uint8 image (what DVPP decodes back to NV12 on the device)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise AscendSlimError(f"cannot JPEG-encode an image of shape {rgb.shape}")
    return buf.tobytes()


def check_om_file(om: Path) -> Path:
    """MindX refuses model files that others may write or execute (mode above 640)."""
    om = om.resolve()
    if not om.is_file():
        raise AscendSlimError(f"model not found: {om}")
    if om.stat().st_mode & 0o137:
        raise AscendSlimError(f"MindX requires model file permissions of at most 640: run `chmod 640 {om}`")
    return om


class MindXStream:
    """One MindX stream manager running one pipeline; ``close`` destroys the streams exactly once.

    Constructing it only imports the SDK modules; :meth:`open` starts the manager and the pipeline.
    """

    def __init__(self) -> None:
        self._sdk, self._pb = import_sdk("mindx", "StreamManagerApi", "MxpiDataType_pb2")

    def open(self, pipeline: dict) -> None:
        self._api = self._sdk.StreamManagerApi()
        ret = self._api.InitManager()
        if ret != 0:
            raise AscendSlimError(f"MindX InitManager failed with error code {ret}: check the device and the SDK setup")
        ret = self._api.CreateMultipleStreams(render_pipeline(pipeline).encode())
        if ret != 0:
            self._api.DestroyAllStreams()
            raise AscendSlimError(f"MindX CreateMultipleStreams failed with error code {ret} (see the SDK log)")
        self._open = True

    def send(self, data: bytes) -> None:
        item = self._sdk.MxDataInput()
        item.data = data
        ret = self._api.SendData(STREAM, 0, item)
        if ret != 0:
            raise AscendSlimError(f"MindX SendData failed with error code {ret}")

    def tensors(self, element: str) -> list[np.ndarray]:
        """The float32 tensors of ``element``'s ``MxpiTensorPackageList`` for the last image sent."""
        keys = self._sdk.StringVector()
        keys.push_back(element.encode())
        found = self._api.GetProtobuf(STREAM, 0, keys)
        if found.size() == 0:
            raise AscendSlimError(f"MindX returned no {element} result for the image")
        if found[0].errorCode != 0:
            raise AscendSlimError(f"MindX {element} failed with error code {found[0].errorCode}")
        packages = self._pb.MxpiTensorPackageList()
        packages.ParseFromString(found[0].messageBuf)
        out = []
        for tensor in packages.tensorPackageVec[0].tensorVec:
            shape = tuple(tensor.tensorShape)
            if len(tensor.dataStr) != int(np.prod(shape)) * 4:
                raise AscendSlimError(f"MindX tensor of shape {shape} is not FP32: convert with --output_type=FP32")
            out.append(np.frombuffer(tensor.dataStr, np.float32).reshape(shape))
        return out

    def result(self) -> bytes:
        """The ``appsink0`` output (the mxpi_dataserialize JSON) for the last image sent."""
        output = self._api.GetResult(STREAM, 0)
        if output.errorCode != 0:
            raise AscendSlimError(f"MindX GetResult failed with error code {output.errorCode}")
        return output.data

    def next_result(self, timeout_ms: int) -> tuple[int, bytes]:
        """``(error code, data)`` of the next ``appsink0`` output of a stream that feeds itself (video),
        waiting at most ``timeout_ms``; a non-zero code means nothing came (timeout, stream stopped)."""
        output = self._api.GetResult(STREAM, 0, timeout_ms)
        return output.errorCode, output.data

    def close(self) -> None:
        if getattr(self, "_open", False):
            self._open = False
            self._api.DestroyAllStreams()


def _check_batch(tensor: np.ndarray, meta: ModelMeta) -> None:
    h, w = meta.img_size
    if tensor.ndim != 4 or tensor.shape[1:] != (h, w, 3) or tensor.dtype != np.uint8:
        raise AscendSlimError(f"MindX expects a uint8 batch of shape (N, {h}, {w}, 3), got {tensor.dtype} "
                              f"{tensor.shape}")


class MindXBackend(Backend):
    """Raw heads of an ascend-slim ``.om`` (with AIPP) through the MindX SDK."""

    name = "mindx"
    input_dtype = np.uint8
    input_layout = "NHWC"

    def __init__(self, om: str | Path, device_id: int = 0, jpeg_quality: int = 95) -> None:
        stream = MindXStream()
        self.meta = om_meta(om)
        self.jpeg_quality = jpeg_quality
        stream.open(raw_tensor_pipeline(str(check_om_file(Path(om))), device_id))
        self._stream = stream

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        _check_batch(tensor, self.meta)
        expected = head_shapes(self.meta)
        batches: list[list[np.ndarray]] = [[] for _ in expected]
        for image in tensor:
            self._stream.send(encode_jpeg(image, self.jpeg_quality))
            heads = {t.shape[2:4]: t for t in self._stream.tensors(RAW_TENSOR_ELEMENT)}
            for k, shape in enumerate(expected):
                head = heads.get(shape[2:4])
                if head is None or head.size != int(np.prod(shape)):
                    raise AscendSlimError(f"MindX outputs {[t.shape for t in heads.values()]} lack the head {shape}")
                batches[k].append(head.reshape(shape))
        return [np.concatenate(parts) for parts in batches]

    def close(self) -> None:
        if hasattr(self, "_stream"):
            self._stream.close()


class _PostprocessFiles:
    """The postprocess cfg and label file of a pipeline that runs the SDK's YOLOv5 postprocessor, in a temporary
    folder removed by :meth:`remove` (modes within MindX's limit of 640)."""

    def __init__(self, meta: ModelMeta, om: Path, thresholds: Thresholds, route: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ascend-slim-mindx-"))
        cfg, labels = self.dir / "postprocess.cfg", self.dir / "labels.names"
        cfg.write_text(render_cfg(postprocess_cfg(meta, thresholds, route)), encoding="utf-8")
        labels.write_text(render_labels(meta.names), encoding="utf-8")
        for path in (cfg, labels):
            path.chmod(0o640)
        self.model_files = ModelFiles(om=str(om), label=str(labels), detect_cfg=str(cfg), eval_cfg=str(cfg))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class _PostprocessRoute:
    """A MindX stream ending in the SDK's YOLOv5 postprocessor; ``close`` destroys it and removes its files."""

    _stream: MindXStream
    _files: _PostprocessFiles
    meta: ModelMeta

    def _start(self, stream: MindXStream, om: str | Path, thresholds: Thresholds, route: str,
               pipeline: Callable[[ModelFiles], dict]) -> None:
        """Write the cfg and labels, then open ``pipeline(files)`` on ``stream``; nothing is left on failure."""
        self._files = _PostprocessFiles(self.meta, check_om_file(Path(om)), thresholds, route)
        try:
            stream.open(pipeline(self._files.model_files))
            self._stream = stream
        except BaseException:
            self._files.remove()
            raise

    def close(self) -> None:
        if hasattr(self, "_stream"):
            self._stream.close()
        if hasattr(self, "_files"):
            self._files.remove()

    def __enter__(self: _Route) -> _Route:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MindXObjectRoute(_PostprocessRoute):
    """The SDK's postprocessor (``route`` modelinfer or tensorinfer, eval pipeline): letterboxed RGB image in,
    ``Kx6`` ``[x0, y0, x1, y1, score, class]`` in letterbox pixels out (single best class, no max-det)."""

    def __init__(self, om: str | Path, route: str = "tensorinfer", thresholds: Thresholds = EVAL_THRESHOLDS,
                 device_id: int = 0, jpeg_quality: int = 95) -> None:
        stream = MindXStream()
        self.meta = om_meta(om)
        self.jpeg_quality = jpeg_quality
        self._start(stream, om, thresholds, route,
                    lambda files: detection_pipeline(route, files, resize_to=None, device_id=device_id))

    def detect(self, image: np.ndarray) -> np.ndarray:
        _check_batch(image[None], self.meta)
        self._stream.send(encode_jpeg(image, self.jpeg_quality))
        return parse_object_json(self._stream.result())


class MindXVideoRoute(_PostprocessRoute):
    """The video pipeline (:func:`~ascend_slim.ascend.pipelines.video_pipeline`) on the device: ``mxpi_rtspsrc``
    pulls ``rtsp_url``, VDEC decodes, DVPP resizes, the .om and the SDK's YOLOv5 postprocessor (tensorinfer
    route) detect. :meth:`frames` yields ``(frame_index, Kx6 [x0, y0, x1, y1, score, class])`` in frame pixels,
    in arrival order, until no result comes for ``timeout_s`` (the stream ended or stalled)."""

    def __init__(self, om: str | Path, rtsp_url: str, thresholds: Thresholds = DETECT_THRESHOLDS,
                 device_id: int = 0, timeout_s: float = STREAM_TIMEOUT_S) -> None:
        stream = MindXStream()
        self.meta = om_meta(om)
        self.url, self.timeout_s = rtsp_url, timeout_s
        self.end_code: int | None = None  # GetResult's code when the results stopped
        self._start(stream, om, thresholds, "tensorinfer", lambda files: video_pipeline(
            files, resize_to=self.meta.img_size, rtsp_url=rtsp_url, device_id=device_id))

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        index = 0
        while True:
            code, data = self._stream.next_result(int(self.timeout_s * 1000))
            if code != 0:
                self.end_code = code
                break
            yield index, parse_object_json(data)
            index += 1
        if index == 0:
            raise AscendSlimError(f"the MindX video pipeline returned no frame from {self.url} within "
                                  f"{self.timeout_s:g} s (GetResult error code {code}): check the address, that the "
                                  "camera sends H.264, and the SDK log")


def parse_object_json(data: bytes | str) -> np.ndarray:
    """``Kx6`` detections from the mxpi_dataserialize JSON (``{"MxpiObject": [{"x0", ..., "classVec": [...]}]}``)."""
    try:
        doc = json.loads(data) if data else {}
        rows = [[o["x0"], o["y0"], o["x1"], o["y1"], o["classVec"][0]["confidence"], o["classVec"][0]["classId"]]
                for o in doc.get("MxpiObject", [])]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise AscendSlimError(f"unexpected MindX result JSON ({exc}): {str(data)[:80]!r}") from None
    return np.asarray(rows, dtype=np.float32).reshape(-1, 6)
