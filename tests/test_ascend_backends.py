"""ACL and MindX backends against recording stand-ins for the SDK modules (inserted via sys.modules).

The stand-ins never invent outputs: their "device" runs the real exported ONNX with onnxruntime on the bytes the
backend sent (NV12 through the AIPP emulation, JPEG through OpenCV's decoder, or float32 NCHW as is).
"""

from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from ascend_slim import Detector, core
from ascend_slim.ascend.aipp import apply_aipp, rgb_to_nv12, yolov5_aipp
from ascend_slim.ascend.model_facts import onnx_meta, sidecar_text
from ascend_slim.ascend.pipelines import pipeline_chain
from ascend_slim.ascend.postprocess_cfg import Thresholds, parse_cfg
from ascend_slim.classes import VOC_CLASSES
from ascend_slim.errors import AscendSlimError
from ascend_slim.runtime.factory import open_ascend_backend
from ascend_slim.runtime.mindx_backend import MindXObjectRoute

SIZE = 256


@pytest.fixture(scope="module")
def voc_onnx(yolov5n_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ascend_slim.export import export_onnx
    from ascend_slim.model.checkpoint import load_weights
    from ascend_slim.model.remap import remap_classes

    model, _ = load_weights(yolov5n_pt)
    return export_onnx(remap_classes(model, VOC_CLASSES), tmp_path_factory.mktemp("om") / "model.onnx", img_size=SIZE)


@pytest.fixture(scope="module")
def letterboxed(images_dir: Path) -> np.ndarray:
    """bus.jpg letterboxed (grey 114, centred) to SIZE as an RGB uint8 batch of one."""
    img = cv2.imread(str(images_dir / "bus.jpg"))[:, :, ::-1]
    r = SIZE / max(img.shape[:2])
    h, w = round(img.shape[0] * r), round(img.shape[1] * r)
    out = np.full((SIZE, SIZE, 3), 114, np.uint8)
    top, left = (SIZE - h) // 2, (SIZE - w) // 2
    out[top:top + h, left:left + w] = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return out[None]


def _om(folder: Path, onnx_path: Path, aipp: bool, mode: int = 0o640) -> Path:
    """A stand-in .om (the fake SDK reads which ONNX it 'contains') with the deploy sidecar beside it."""
    om = folder / ("model.om" if aipp else "model_float.om")
    om.write_text(json.dumps({"onnx": str(onnx_path), "aipp": aipp}))
    om.chmod(mode)
    om.with_suffix(".json").write_text(sidecar_text(onnx_meta(onnx_path), {"om": om.name}))
    return om


class FakeDevice:
    """The model 'on the device': onnxruntime on what the om would receive after AIPP."""

    def __init__(self, om_path: str) -> None:
        spec = json.loads(Path(om_path).read_text())
        self.aipp = spec["aipp"]
        self.onnx = spec["onnx"]
        self.session = ort.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()][::-1]  # device order differs from the graph's
        self.shapes = {o.name: tuple(o.shape) for o in self.session.get_outputs()}

    def infer(self, data: bytes) -> list[np.ndarray]:
        if self.aipp:
            nv12 = np.frombuffer(data, np.uint8).reshape(SIZE * 3 // 2, SIZE)
            x = apply_aipp(nv12, yolov5_aipp(SIZE, SIZE)).transpose(2, 0, 1)[None]
        else:
            x = np.frombuffer(data, np.float32).reshape(1, 3, SIZE, SIZE)
        return self.session.run(self.outputs, {"images": np.ascontiguousarray(x)})


def expected_heads(onnx_path: Path, model_input: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": model_input})


# ----------------------------------------------------------------------------------------------- pyACL
class FakeAcl:
    """Recording pyACL: device memory is bytearrays, host pointers map to numpy arrays."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[str] = []
        self.live: list[str] = []  # acquired, not yet released resources, in order
        self.fail = fail
        self.memory: dict[int, bytearray] = {}
        self.host: dict[int, np.ndarray] = {}
        self.buffers: dict[int, tuple[int, int]] = {}
        self.datasets: dict[int, list[int]] = {}
        self.device: FakeDevice | None = None
        self._next = 0x1000
        module = types.ModuleType("acl")
        module.init = self._op("acl.init", lambda: 0, acquire="acl")
        module.finalize = self._op("acl.finalize", lambda: 0, release="acl")
        module.create_data_buffer = self._op("acl.create_data_buffer", self._create_buffer)
        module.destroy_data_buffer = self._op("acl.destroy_data_buffer", self._destroy_buffer)
        module.rt = types.SimpleNamespace(
            set_device=self._op("acl.rt.set_device", lambda d: 0, acquire="device"),
            reset_device=self._op("acl.rt.reset_device", lambda d: 0, release="device"),
            create_context=self._op("acl.rt.create_context", lambda d: ("ctx", 0), acquire="context"),
            destroy_context=self._op("acl.rt.destroy_context", lambda c: 0, release="context"),
            get_run_mode=self._op("acl.rt.get_run_mode", lambda: (1, 0)),  # ACL_HOST
            malloc=self._op("acl.rt.malloc", self._malloc),
            free=self._op("acl.rt.free", self._free),
            memcpy=self._op("acl.rt.memcpy", self._memcpy),
        )
        module.mdl = types.SimpleNamespace(
            load_from_file=self._op("acl.mdl.load_from_file", self._load, acquire="model"),
            unload=self._op("acl.mdl.unload", lambda m: 0, release="model"),
            create_desc=self._op("acl.mdl.create_desc", lambda: "desc", acquire="desc"),
            destroy_desc=self._op("acl.mdl.destroy_desc", lambda d: 0, release="desc"),
            get_desc=self._op("acl.mdl.get_desc", lambda d, m: 0),
            get_num_inputs=self._op("acl.mdl.get_num_inputs", lambda d: 1),
            get_num_outputs=self._op("acl.mdl.get_num_outputs", lambda d: len(self.device.outputs)),
            get_input_size_by_index=self._op("acl.mdl.get_input_size_by_index", self._input_size),
            get_output_size_by_index=self._op("acl.mdl.get_output_size_by_index",
                                              lambda d, i: int(np.prod(self._out_shape(i))) * 4),
            get_output_dims=self._op("acl.mdl.get_output_dims",
                                     lambda d, i: ({"name": self.device.outputs[i], "dims": self._out_shape(i)}, 0)),
            get_output_data_type=self._op("acl.mdl.get_output_data_type", lambda d, i: 0),
            create_dataset=self._op("acl.mdl.create_dataset", self._create_dataset),
            destroy_dataset=self._op("acl.mdl.destroy_dataset", self._destroy_dataset),
            add_dataset_buffer=self._op("acl.mdl.add_dataset_buffer", self._add_buffer),
            execute=self._op("acl.mdl.execute", self._execute),
        )
        module.util = types.SimpleNamespace(numpy_to_ptr=self._numpy_to_ptr)
        self.module = module

    def _op(self, name: str, fn, acquire: str | None = None, release: str | None = None):
        def call(*args):
            self.calls.append(name)
            if name == self.fail:
                return (None, 507011) if name in ("acl.rt.create_context", "acl.mdl.load_from_file",
                                                  "acl.rt.malloc") else 507011
            result = fn(*args)
            if acquire:
                self.live.append(acquire)
            if release:
                assert self.live and self.live[-1] == release, f"{name} out of order: live {self.live}"
                self.live.pop()
            return result
        return call

    def _ptr(self) -> int:
        self._next += 0x100
        return self._next

    def _malloc(self, size: int, policy: int):
        assert policy == 2  # ACL_MEM_MALLOC_NORMAL_ONLY
        ptr = self._ptr()
        self.memory[ptr] = bytearray(size)
        self.live.append(f"mem{ptr}")
        return ptr, 0

    def _free(self, ptr: int) -> int:
        assert self.live[-1] == f"mem{ptr}", f"free out of order: {self.live}"
        self.live.pop()
        del self.memory[ptr]
        return 0

    def _create_buffer(self, ptr: int, size: int) -> int:
        assert len(self.memory[ptr]) == size
        handle = self._ptr()
        self.buffers[handle] = (ptr, size)
        self.live.append(f"buf{handle}")
        return handle

    def _destroy_buffer(self, handle: int) -> int:
        assert self.live[-1] == f"buf{handle}"
        self.live.pop()
        del self.buffers[handle]
        return 0

    def _create_dataset(self) -> int:
        handle = self._ptr()
        self.datasets[handle] = []
        self.live.append(f"ds{handle}")
        return handle

    def _destroy_dataset(self, handle: int) -> int:
        assert self.live[-1] == f"ds{handle}"
        self.live.pop()
        return 0

    def _add_buffer(self, ds: int, buf: int):
        self.datasets[ds].append(buf)
        return ds, 0

    def _load(self, path: str):
        self.device = FakeDevice(path)
        return 1, 0

    def _input_size(self, desc, index: int) -> int:
        return SIZE * SIZE * 3 // 2 if self.device.aipp else 3 * SIZE * SIZE * 4

    def _out_shape(self, i: int) -> list[int]:
        return list(self.device.shapes[self.device.outputs[i]])

    def _numpy_to_ptr(self, array: np.ndarray) -> int:
        assert array.flags.c_contiguous
        ptr = self._ptr()
        self.host[ptr] = array
        return ptr

    def _memcpy(self, dst: int, dst_size: int, src: int, src_size: int, kind: int) -> int:
        if kind == 1:  # host -> device
            data = self.host[src].view(np.uint8).reshape(-1)
            assert src_size == data.size <= dst_size == len(self.memory[dst])
            self.memory[dst][:src_size] = data.tobytes()
        elif kind == 2:  # device -> host
            target = self.host[dst].view(np.uint8).reshape(-1)
            assert src_size == len(self.memory[src]) == dst_size == target.size
            target[:] = np.frombuffer(bytes(self.memory[src]), np.uint8)
        else:
            raise AssertionError(f"unexpected memcpy kind {kind} in host run mode")
        return 0

    def _execute(self, model: int, in_ds: int, out_ds: int) -> int:
        (in_buf,) = self.datasets[in_ds]
        ptr, size = self.buffers[in_buf]
        outputs = self.device.infer(bytes(self.memory[ptr][:size]))
        for buf, value in zip(self.datasets[out_ds], outputs):
            out_ptr, out_size = self.buffers[buf]
            assert value.nbytes == out_size
            self.memory[out_ptr][:] = value.astype(np.float32).tobytes()
        return 0


@pytest.fixture()
def fake_acl(monkeypatch: pytest.MonkeyPatch):
    def install(fail: str | None = None) -> FakeAcl:
        fake = FakeAcl(fail)
        monkeypatch.setitem(sys.modules, "acl", fake.module)
        return fake
    return install


def test_acl_aipp_model(fake_acl, voc_onnx: Path, tmp_path: Path, letterboxed: np.ndarray) -> None:
    fake = fake_acl()
    with open_ascend_backend(_om(tmp_path, voc_onnx, aipp=True), "acl") as backend:
        assert (backend.input_dtype, backend.input_layout) == (np.uint8, "NHWC")
        assert backend.meta.names == list(VOC_CLASSES)
        heads = backend.run(np.concatenate([letterboxed, letterboxed[:, ::-1]]))
    nv12 = [rgb_to_nv12(img) for img in (letterboxed[0], letterboxed[0, ::-1])]
    model_input = np.stack([apply_aipp(x, yolov5_aipp(SIZE, SIZE)).transpose(2, 0, 1) for x in nv12])
    want = [np.concatenate(parts) for parts in zip(*(expected_heads(voc_onnx, model_input[i:i + 1])
                                                     for i in range(2)))]
    assert [h.shape for h in heads] == [(2, 3, SIZE // s, SIZE // s, 25) for s in (8, 16, 32)]
    for got, ref in zip(heads, want):
        np.testing.assert_array_equal(got, ref)
    assert fake.calls[:3] == ["acl.init", "acl.rt.set_device", "acl.rt.create_context"]
    assert fake.calls.count("acl.mdl.execute") == 2
    mallocs = [len(m) for m in fake.memory.values()]
    assert not mallocs and not fake.live  # everything freed, in reverse order
    assert fake.calls[-1] == "acl.finalize"


def test_acl_float_model(fake_acl, voc_onnx: Path, tmp_path: Path, letterboxed: np.ndarray) -> None:
    fake_acl()
    tensor = np.ascontiguousarray(letterboxed.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    with open_ascend_backend(_om(tmp_path, voc_onnx, aipp=False), "acl") as backend:
        assert (backend.input_dtype, backend.input_layout) == (np.float32, "NCHW")
        heads = backend.run(tensor)
        with pytest.raises(AscendSlimError, match="expects a float32 batch"):
            backend.run(letterboxed)
    for got, ref in zip(heads, expected_heads(voc_onnx, tensor)):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("fail", ["acl.rt.set_device", "acl.rt.create_context", "acl.mdl.load_from_file",
                                  "acl.mdl.get_desc", "acl.rt.malloc", "acl.mdl.add_dataset_buffer"])
def test_acl_releases_everything_when_opening_fails(fake_acl, voc_onnx: Path, tmp_path: Path, fail: str) -> None:
    fake = fake_acl(fail)
    with pytest.raises(AscendSlimError, match=f"pyACL {fail}.*error code 507011"):
        open_ascend_backend(_om(tmp_path, voc_onnx, aipp=True), "acl")
    assert fake.live == [] and fake.calls[-1] == "acl.finalize"


def test_acl_execute_failure_then_close(fake_acl, voc_onnx: Path, tmp_path: Path, letterboxed: np.ndarray) -> None:
    fake = fake_acl("acl.mdl.execute")
    backend = open_ascend_backend(_om(tmp_path, voc_onnx, aipp=True), "acl")
    with pytest.raises(AscendSlimError, match=r"acl\.mdl\.execute failed"):
        backend.run(letterboxed)
    backend.close()
    backend.close()  # idempotent
    assert fake.live == [] and fake.calls.count("acl.finalize") == 1


def test_acl_rejects_facts_of_another_model(fake_acl, voc_onnx: Path, tmp_path: Path) -> None:
    fake = fake_acl()
    om = _om(tmp_path, voc_onnx, aipp=True)
    facts = json.loads(om.with_suffix(".json").read_text())
    facts["ascend_slim.img_size"] = "[320, 320]"
    om.with_suffix(".json").write_text(json.dumps(facts))
    with pytest.raises(AscendSlimError, match="neither NV12"):
        open_ascend_backend(om, "acl")
    assert fake.live == []


def test_missing_sdk_is_one_clear_line(voc_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    om = _om(tmp_path, voc_onnx, aipp=True)
    for name in ("acl", "StreamManagerApi"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    with pytest.raises(AscendSlimError, match=r"module 'acl'.*CANN toolkit.*ascend-toolkit/set_env\.sh"):
        open_ascend_backend(om, "auto")
    with pytest.raises(AscendSlimError, match=r"module 'StreamManagerApi'.*MindX SDK.*set_env\.sh") as info:
        open_ascend_backend(om, "mindx")
    assert "\n" not in str(info.value)
    with pytest.raises(AscendSlimError, match=r"runs Ascend \.om models"):
        open_ascend_backend(voc_onnx, "acl")


# ----------------------------------------------------------------------------------------------- MindX
class FakeMindX:
    """Recording StreamManagerApi + MxpiDataType_pb2; the device decodes the JPEG (OpenCV standing in for
    DVPP), applies the AIPP emulation and runs the model named by the pipeline's modelPath. A video pipeline
    pulls its rtspUrl from ``cameras`` (URL -> local clip, OpenCV standing in for the RTSP pull and VDEC)."""

    def __init__(self, create_ret: int = 0, empty_result: bool = False, cameras: dict | None = None) -> None:
        self.calls: list[str] = []
        self.camera = None
        self.expected_frames: list[np.ndarray] = []
        self.pipelines: list[dict] = []
        self.sent: list[bytes] = []
        fake = self

        class StreamManagerApi:
            def InitManager(self) -> int:
                fake.calls.append("InitManager")
                return 0

            def CreateMultipleStreams(self, pipeline: bytes) -> int:
                fake.calls.append("CreateMultipleStreams")
                doc = json.loads(pipeline)
                fake.pipelines.append(doc)
                body = doc["detection"]
                model = next(body[e]["props"]["modelPath"] for e in pipeline_chain(doc)
                             if "modelPath" in body[e].get("props", {}))
                fake.device = FakeDevice(model)
                if "mxpi_rtspsrc0" in body:
                    url = body["mxpi_rtspsrc0"]["props"]["rtspUrl"]
                    fake.camera = cv2.VideoCapture(str(cameras[url])) if url in (cameras or {}) else None
                return create_ret

            def SendData(self, stream: bytes, plugin: int, item) -> int:
                fake.calls.append("SendData")
                assert (stream, plugin) == (b"detection", 0)
                fake.sent.append(item.data)
                return 0

            def GetProtobuf(self, stream: bytes, plugin: int, keys):
                fake.calls.append("GetProtobuf")
                assert (stream, plugin, keys.items) == (b"detection", 0, [b"mxpi_tensorinfer0"])
                if empty_result:
                    return FakeVector([])
                bgr = cv2.imdecode(np.frombuffer(fake.sent[-1], np.uint8), cv2.IMREAD_COLOR)
                nv12 = rgb_to_nv12(np.ascontiguousarray(bgr[:, :, ::-1]))
                heads = fake.device.infer(nv12.tobytes())
                buf = pickle.dumps([(h.shape, h.astype(np.float32).tobytes()) for h in heads])
                return FakeVector([types.SimpleNamespace(errorCode=0, messageName=b"MxpiTensorPackageList",
                                                         messageBuf=buf)])

            def GetResult(self, stream: bytes, plugin: int, timeout_ms: int | None = None):
                """The SDK postprocessor's result, computed by the core's "mindx" decode with the thresholds of
                the cfg file the pipeline names: boxes in pixels of the JPEG sent (the eval flow), or for a video
                pipeline of the next camera frame, resized keeping its aspect ratio (top-left) to the model size
                and mapped back; error code 1001 once the camera has no more frames."""
                fake.calls.append("GetResult")
                if "mxpi_rtspsrc0" in fake.pipelines[-1]["detection"]:
                    assert timeout_ms is not None and timeout_ms > 0
                    ok, frame = fake.camera.read() if fake.camera is not None else (False, None)
                    if not ok:
                        return types.SimpleNamespace(errorCode=1001, data=b"")
                    r = SIZE / max(frame.shape[:2])
                    resized = np.zeros((SIZE, SIZE, 3), np.uint8)
                    h, w = round(frame.shape[0] * r), round(frame.shape[1] * r)
                    resized[:h, :w] = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
                    data = self._objects(resized[:, :, ::-1], scale=1 / r)
                    fake.expected_frames.append(fake.expected)
                    return types.SimpleNamespace(errorCode=0, data=data)
                rgb = cv2.imdecode(np.frombuffer(fake.sent[-1], np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
                return types.SimpleNamespace(errorCode=0, data=self._objects(rgb))

            def _objects(self, rgb: np.ndarray, scale: float = 1.0) -> bytes:
                body = fake.pipelines[-1]["detection"]
                post = next(e["props"] for e in body.values() if "postProcessConfigPath" in e.get("props", {}))
                cfg = parse_cfg(Path(post["postProcessConfigPath"]).read_text())
                names = Path(post["labelPath"]).read_text().splitlines()
                heads = fake.device.infer(rgb_to_nv12(np.ascontiguousarray(rgb)).tobytes())
                heads = sorted(heads, key=lambda h: -h.shape[2])
                meta = onnx_meta(fake.device.onnx)
                (dets,) = core.postprocess(heads, meta.anchors, meta.strides, float(cfg["SCORE_THRESH"]),
                                           float(cfg["IOU_THRESH"]), max_det=None, mode="mindx",
                                           obj_thres=float(cfg["OBJECTNESS_THRESH"]))
                dets[:, :4] *= scale
                objects = [{"classVec": [{"classId": int(c), "className": names[int(c)], "confidence": float(s),
                                          "headerVec": []}], "x0": float(x0), "y0": float(y0), "x1": float(x1),
                            "y1": float(y1)} for x0, y0, x1, y1, s, c in dets]
                fake.expected = dets
                return json.dumps({"MxpiObject": objects}).encode()

            def DestroyAllStreams(self) -> int:
                fake.calls.append("DestroyAllStreams")
                return 0

        class StringVector:
            def __init__(self) -> None:
                self.items: list[bytes] = []

            def push_back(self, item: bytes) -> None:
                self.items.append(item)

        class MxpiTensorPackageList:
            def ParseFromString(self, buf: bytes) -> None:
                tensors = [types.SimpleNamespace(tensorShape=list(s), dataStr=d) for s, d in pickle.loads(buf)]
                self.tensorPackageVec = [types.SimpleNamespace(tensorVec=tensors)]

        self.api = types.ModuleType("StreamManagerApi")
        self.api.StreamManagerApi = StreamManagerApi
        self.api.MxDataInput = types.SimpleNamespace
        self.api.StringVector = StringVector
        self.pb = types.ModuleType("MxpiDataType_pb2")
        self.pb.MxpiTensorPackageList = MxpiTensorPackageList


class FakeVector(list):
    def size(self) -> int:
        return len(self)


@pytest.fixture()
def fake_mindx(monkeypatch: pytest.MonkeyPatch):
    def install(**kwargs) -> FakeMindX:
        fake = FakeMindX(**kwargs)
        monkeypatch.setitem(sys.modules, "StreamManagerApi", fake.api)
        monkeypatch.setitem(sys.modules, "MxpiDataType_pb2", fake.pb)
        return fake
    return install


def test_mindx_raw_tensor_route(fake_mindx, voc_onnx: Path, tmp_path: Path, letterboxed: np.ndarray) -> None:
    fake = fake_mindx()
    om = _om(tmp_path, voc_onnx, aipp=True)
    with open_ascend_backend(om, "mindx") as backend:
        assert (backend.input_dtype, backend.input_layout) == (np.uint8, "NHWC")
        heads = backend.run(letterboxed)
    assert fake.calls == ["InitManager", "CreateMultipleStreams", "SendData", "GetProtobuf", "DestroyAllStreams"]
    (doc,) = fake.pipelines
    assert pipeline_chain(doc) == ["appsrc0", "mxpi_imagedecoder0", "mxpi_tensorinfer0", "appsink0"]
    assert doc["detection"]["mxpi_tensorinfer0"]["props"]["modelPath"] == str(om.resolve())
    jpeg = cv2.imdecode(np.frombuffer(fake.sent[0], np.uint8), cv2.IMREAD_COLOR)
    assert jpeg.shape == (SIZE, SIZE, 3)
    # the JPEG carries the image (RGB -> BGR for the encoder): close to the letterboxed input
    assert np.abs(jpeg[:, :, ::-1].astype(int) - letterboxed[0]).mean() < 3
    nv12 = rgb_to_nv12(np.ascontiguousarray(jpeg[:, :, ::-1]))
    model_input = apply_aipp(nv12, yolov5_aipp(SIZE, SIZE)).transpose(2, 0, 1)[None]
    for got, ref in zip(heads, expected_heads(voc_onnx, np.ascontiguousarray(model_input))):
        np.testing.assert_array_equal(got, ref)


def test_mindx_failures_clean_up(fake_mindx, voc_onnx: Path, tmp_path: Path, letterboxed: np.ndarray) -> None:
    om = _om(tmp_path, voc_onnx, aipp=True)
    fake = fake_mindx(create_ret=1001)
    with pytest.raises(AscendSlimError, match="CreateMultipleStreams failed with error code 1001"):
        open_ascend_backend(om, "mindx")
    assert fake.calls == ["InitManager", "CreateMultipleStreams", "DestroyAllStreams"]

    fake = fake_mindx(empty_result=True)
    backend = open_ascend_backend(om, "mindx")
    with pytest.raises(AscendSlimError, match="no mxpi_tensorinfer0 result"):
        backend.run(letterboxed)
    backend.close()
    backend.close()
    assert fake.calls.count("DestroyAllStreams") == 1

    om.chmod(0o644)
    with pytest.raises(AscendSlimError, match="chmod 640"):
        open_ascend_backend(om, "mindx")


def test_mindx_object_route(fake_mindx, voc_onnx: Path, tmp_path: Path, letterboxed: np.ndarray) -> None:
    fake = fake_mindx()
    om = _om(tmp_path, voc_onnx, aipp=True)
    with MindXObjectRoute(om, route="modelinfer", thresholds=Thresholds(0.3, 0.2, 0.45)) as route:
        dets = route.detect(letterboxed[0])
        body = fake.pipelines[0]["detection"]
        infer = body["mxpi_modelinfer0"]["props"]
        cfg = parse_cfg(Path(infer["postProcessConfigPath"]).read_text())
    assert [body[e]["factory"] for e in pipeline_chain(fake.pipelines[0])] == [
        "appsrc", "mxpi_imagedecoder", "mxpi_modelinfer", "mxpi_dataserialize", "appsink"]  # eval: no resizer
    assert (cfg["SCORE_THRESH"], cfg["OBJECTNESS_THRESH"], cfg["IOU_THRESH"], cfg["MODEL_TYPE"]) == (
        "0.3", "0.2", "0.45", "1")
    assert fake.calls == ["InitManager", "CreateMultipleStreams", "SendData", "GetResult", "DestroyAllStreams"]
    assert len(dets) > 0 and dets.shape[1] == 6
    np.testing.assert_allclose(dets, fake.expected, rtol=1e-6)
    assert not Path(infer["postProcessConfigPath"]).exists()  # temporary cfg folder removed on close


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:4], b[None, :, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a, area_b = (np.prod(d[:, 2:4] - d[:, :2], axis=1) for d in (a, b))
    return inter / (area_a[:, None] + area_b[None] - inter)


@pytest.mark.parametrize("kind", ["acl", "mindx"])
def test_detector_on_ascend_backends_matches_cpu(kind: str, fake_acl, fake_mindx, voc_onnx: Path, tmp_path: Path,
                                                 images_dir: Path) -> None:
    """Detector end to end: NV12/AIPP (acl) or JPEG/DVPP/AIPP (mindx) input paths find the same confident objects
    as onnxruntime on the float RGB/255 input."""
    fake_acl()
    fake_mindx()
    om = _om(tmp_path, voc_onnx, aipp=True)
    with Detector(voc_onnx, backend="onnxruntime") as cpu, Detector(om, backend=kind) as npu:
        assert npu.backend.name == kind
        ref, got = cpu.predict(images_dir / "bus.jpg").to_array(), npu.predict(images_dir / "bus.jpg").to_array()
    confident = ref[ref[:, 4] > 0.4]
    assert len(confident) >= 3
    iou = _iou(confident, got)
    best = iou.argmax(axis=1)
    assert np.all(iou.max(axis=1) > 0.9)
    assert np.array_equal(got[best, 5], confident[:, 5])
    # measured: max score difference 0.029 (acl, NV12 chroma subsampling), 0.048 (mindx, + JPEG q95)
    assert np.all(np.abs(got[best, 4] - confident[:, 4]) < {"acl": 0.05, "mindx": 0.1}[kind])


def test_mindx_video_pipeline_from_the_cli(fake_mindx, voc_onnx: Path, voc_root: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`detect --backend mindx --source rtsp://...` runs the video pipeline: the URL and the model go into it,
    one result per frame comes back through GetResult and becomes `<name>_<frame>.txt` labels (frame pixels,
    normalised by the frame size), --vid-stride skips results, the stream is destroyed and its files removed."""
    import ascend_slim.videoio as videoio
    from ascend_slim.cli import main as cli_main
    from ascend_slim.data.yolo_txt import format_yolo_lines

    ids = (voc_root / "VOC2007/ImageSets/Main/trainval.txt").read_text().split()[:6]
    clip = tmp_path / "camera.mkv"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for i in ids:
        writer.write(cv2.resize(cv2.imread(str(voc_root / f"VOC2007/JPEGImages/{i}.jpg")), (320, 240)))
    writer.release()
    url = "rtsp://10.0.0.5:554/live/cam1"
    fake = fake_mindx(cameras={url: clip})
    # the host's own look at the camera (fail fast, frame size) opens the same clip
    monkeypatch.setattr(videoio, "open_capture", lambda source, timeout_s=0: cv2.VideoCapture(str(clip)))
    om = _om(tmp_path, voc_onnx, aipp=True)
    out = tmp_path / "res"
    code = cli_main(["detect", "--weights", str(om), "--backend", "mindx", "--source", url, "--save-txt",
                     "--nosave", "--vid-stride", "2", "--conf-thres", "0.3", "--timeout", "2", "--out", str(out)])
    assert code == 0
    (doc,) = fake.pipelines
    body = doc["detection"]
    assert pipeline_chain(doc) == ["mxpi_rtspsrc0", "mxpi_videodecoder0", "mxpi_imageresize0", "mxpi_tensorinfer0",
                                   "mxpi_objectpostprocessor0", "mxpi_dataserialize0", "appsink0"]
    assert body["mxpi_rtspsrc0"]["props"]["rtspUrl"] == url
    assert body["mxpi_tensorinfer0"]["props"]["modelPath"] == str(om.resolve())
    assert body["mxpi_imageresize0"]["props"]["resizeHeight"] == str(SIZE)
    cfg_path = Path(body["mxpi_objectpostprocessor0"]["props"]["postProcessConfigPath"])
    assert not cfg_path.exists()  # the temporary cfg folder is removed on close
    assert fake.calls == ["InitManager", "CreateMultipleStreams", *["GetResult"] * 7, "DestroyAllStreams"]
    assert len(fake.expected_frames) == 6
    labels = sorted(p.name for p in (out / "labels").iterdir())
    assert labels == ["cam1_0.txt", "cam1_2.txt", "cam1_4.txt"]  # named after the URL's last path part
    for index in (0, 2, 4):
        dets = fake.expected_frames[index]
        expected = format_yolo_lines(dets[:, :4], dets[:, 5].astype(int), (240, 320), scores=dets[:, 4])
        assert (out / "labels" / f"cam1_{index}.txt").read_text() == expected
    assert sum(len(d) for d in fake.expected_frames[::2]) > 0  # real photos: there were boxes to write


def test_mindx_video_route_without_frames_or_sdk(fake_mindx, voc_onnx: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from ascend_slim.runtime.mindx_backend import MindXVideoRoute

    om = _om(tmp_path, voc_onnx, aipp=True)
    fake = fake_mindx()  # no camera answers at this URL
    message = r"no frame from rtsp://10\.0\.0\.9/none within 0\.5 s.*1001"
    with MindXVideoRoute(om, "rtsp://10.0.0.9/none", timeout_s=0.5) as route, pytest.raises(AscendSlimError,
                                                                                             match=message):
        list(route.frames())
    assert fake.calls[-1] == "DestroyAllStreams"
    monkeypatch.setitem(sys.modules, "StreamManagerApi", None)
    with pytest.raises(AscendSlimError, match=r"module 'StreamManagerApi'.*MindX SDK") as info:
        MindXVideoRoute(om, "rtsp://10.0.0.9/none")
    assert "\n" not in str(info.value)
