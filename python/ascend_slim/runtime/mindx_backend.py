"""MindX SDK backends (``StreamManagerApi``).

* :class:`MindXBackend` (``--backend mindx``): each letterboxed RGB image is JPEG-encoded and sent through the
  raw-tensor pipeline (DVPP decode -> AIPP -> ``mxpi_tensorinfer``); the heads come back as an
  ``MxpiTensorPackageList`` and are decoded by the C++ core like on every other backend.
* :class:`MindXObjectRoute`: the SDK's own YOLOv5 postprocessor (eval pipeline of either route), returning
  its ``MxpiObject`` list as ``Kx6`` detections in letterbox pixels.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

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
)
from ..ascend.postprocess_cfg import EVAL_THRESHOLDS, Thresholds, postprocess_cfg, render_cfg, render_labels
from ..ascend.sdk import import_sdk
from ..errors import AscendSlimError
from ..meta import ModelMeta
from .base import Backend

STREAM = STREAM_NAME.encode()


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


class MindXObjectRoute:
    """The SDK's postprocessor (``route`` modelinfer or tensorinfer, eval pipeline): letterboxed RGB image in,
    ``Kx6`` ``[x0, y0, x1, y1, score, class]`` in letterbox pixels out (single best class, no max-det)."""

    def __init__(self, om: str | Path, route: str = "tensorinfer", thresholds: Thresholds = EVAL_THRESHOLDS,
                 device_id: int = 0, jpeg_quality: int = 95) -> None:
        stream = MindXStream()
        self.meta = om_meta(om)
        self.jpeg_quality = jpeg_quality
        om = check_om_file(Path(om))
        self._dir = Path(tempfile.mkdtemp(prefix="ascend-slim-mindx-"))
        try:
            cfg, labels = self._dir / "postprocess.cfg", self._dir / "labels.names"
            cfg.write_text(render_cfg(postprocess_cfg(self.meta, thresholds, route)), encoding="utf-8")
            labels.write_text(render_labels(self.meta.names), encoding="utf-8")
            for path in (cfg, labels):
                path.chmod(0o640)
            files = ModelFiles(om=str(om), label=str(labels), detect_cfg=str(cfg), eval_cfg=str(cfg))
            stream.open(detection_pipeline(route, files, resize_to=None, device_id=device_id))
            self._stream = stream
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def detect(self, image: np.ndarray) -> np.ndarray:
        _check_batch(image[None], self.meta)
        self._stream.send(encode_jpeg(image, self.jpeg_quality))
        return parse_object_json(self._stream.result())

    def close(self) -> None:
        if hasattr(self, "_stream"):
            self._stream.close()
        if hasattr(self, "_dir"):
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> MindXObjectRoute:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_object_json(data: bytes | str) -> np.ndarray:
    """``Kx6`` detections from the mxpi_dataserialize JSON (``{"MxpiObject": [{"x0", ..., "classVec": [...]}]}``)."""
    try:
        doc = json.loads(data) if data else {}
        rows = [[o["x0"], o["y0"], o["x1"], o["y1"], o["classVec"][0]["confidence"], o["classVec"][0]["classId"]]
                for o in doc.get("MxpiObject", [])]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise AscendSlimError(f"unexpected MindX result JSON ({exc}): {str(data)[:80]!r}") from None
    return np.asarray(rows, dtype=np.float32).reshape(-1, 6)
