"""ONNX export: ATC-friendly graph (opset 11, static, no ScatterND / strided Slice), onnxruntime == torch,
model facts in metadata_props."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ascend_slim.errors import AscendSlimError
from ascend_slim.export import export_onnx
from ascend_slim.meta import ModelMeta
from ascend_slim.model import YOLOv5
from ascend_slim.model.checkpoint import load_weights

RAW_OPS = {"Conv", "Sigmoid", "Mul", "Add", "Concat", "MaxPool", "Resize", "Reshape", "Transpose", "Constant"}
DECODE_OPS = RAW_OPS | {"Split", "Pow"}


@pytest.fixture(scope="module")
def yolov5n(yolov5n_pt: Path) -> YOLOv5:
    return load_weights(yolov5n_pt)[0].eval()


def run_ort(path: Path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x})


def assert_close_to_scale(ort_out: np.ndarray, torch_out: torch.Tensor) -> float:
    """onnxruntime vs torch, max abs difference relative to the largest magnitude of the torch output."""
    ref = torch_out.numpy()
    rel = float(np.abs(ort_out - ref).max() / np.abs(ref).max())
    assert ort_out.shape == ref.shape and rel < 1e-4, rel
    return rel


def op_counts(proto: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in proto.graph.node)


def test_raw_head_export(yolov5n: YOLOv5, tmp_path: Path) -> None:
    path = export_onnx(yolov5n, tmp_path / "out" / "n.onnx", img_size=320, history_note="from yolov5n.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["n.onnx"]
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [11]
    assert [i.name for i in proto.graph.input] == ["images"]
    dims = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output]
    assert [o.name for o in proto.graph.output] == ["head0", "head1", "head2"]
    assert dims == [[1, 3, 40, 40, 85], [1, 3, 20, 20, 85], [1, 3, 10, 10, 85]]
    ops = op_counts(proto)
    assert set(ops) <= RAW_OPS, set(ops) - RAW_OPS
    assert ops["Transpose"] == 3 and "BatchNormalization" not in ops
    for node in proto.graph.node:
        if node.op_type == "Resize":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert (attrs["mode"], attrs["coordinate_transformation_mode"], attrs["nearest_mode"]) == (
                b"nearest", b"asymmetric", b"floor")

    x = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = yolov5n(x)
    for out, r in zip(run_ort(path, x.numpy()), ref):
        assert_close_to_scale(out, r)

    meta = ModelMeta.from_props({p.key: p.value for p in proto.metadata_props})
    expected = yolov5n.meta(320)
    assert meta.names == expected.names and meta.strides == expected.strides and meta.img_size == (320, 320)
    assert meta.head == "raw" and meta.batch == 1
    np.testing.assert_array_equal(meta.anchors, expected.anchors)
    assert [h["action"] for h in meta.history] == ["import", "export_onnx"]
    assert meta.history[-1]["note"] == "from yolov5n.pt" and meta.history[-1]["opset"] == 11
    assert yolov5n.history == expected.history and not yolov5n.fused  # the source model is untouched


def test_decoded_head_export_batch_and_rectangle(yolov5n: YOLOv5, tmp_path: Path) -> None:
    path = export_onnx(yolov5n, tmp_path / "d.onnx", img_size=(256, 320), batch=2, head="decoded")
    proto = onnx.load(path)
    assert [o.name for o in proto.graph.output] == ["output0"]
    ops = op_counts(proto)
    assert set(ops) <= DECODE_OPS, set(ops) - DECODE_OPS
    x = torch.rand(2, 3, 256, 320, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = yolov5n.decode(yolov5n(x))
    (out,) = run_ort(path, x.numpy())
    assert out.shape == (2, 3 * (32 * 40 + 16 * 20 + 8 * 10), 85)
    assert_close_to_scale(out, ref)
    meta = ModelMeta.from_props({p.key: p.value for p in proto.metadata_props})
    assert meta.head == "decoded" and meta.batch == 2 and meta.img_size == (256, 320)


def test_v5_focus_stem_exports_as_one_conv(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = YOLOv5.from_yaml("yolov5s-v5", nc=2, names=["a", "b"])
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    model.eval()
    path = export_onnx(model, tmp_path / "v5.onnx", img_size=256)
    proto = onnx.load(path)
    ops = op_counts(proto)
    assert "Slice" not in ops and set(ops) <= RAW_OPS, ops
    first = proto.graph.node[0]
    kernel = next(onnx.helper.get_attribute_value(a) for a in first.attribute if a.name == "kernel_shape")
    assert first.op_type == "Conv" and kernel == [6, 6]
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
    for out, r in zip(run_ort(path, x.numpy()), ref):
        assert_close_to_scale(out, r)


@pytest.mark.parametrize("kwargs, message", [
    ({"img_size": 300}, "multiples of the model stride 32"),
    ({"img_size": (320, 0)}, r"image width must lie in \[32, 4096\], got 0"),
    ({"img_size": 8192}, r"image height must lie in \[32, 4096\]"),
    ({"head": "nms"}, "unknown head"),
    ({"batch": 0}, r"batch must lie in \[1, 256\], got 0"),
    ({"batch": 10_000}, "batch must lie"),
    ({"opset": 3}, r"ONNX opset must lie in \[9, 20\], got 3"),
    ({"opset": 99}, "ONNX opset must lie"),
])
def test_bad_export_settings_are_refused(kwargs: dict, message: str, tmp_path: Path) -> None:
    model = YOLOv5.from_yaml("yolov5n")
    with pytest.raises(AscendSlimError, match=message):
        export_onnx(model, tmp_path / "x.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_dynamic_export_runs_any_stride_multiple(yolov5n: YOLOv5, tmp_path: Path) -> None:
    path = export_onnx(yolov5n, tmp_path / "dyn.onnx", img_size=320, dynamic=True)
    proto = onnx.load(path)
    meta = ModelMeta.from_props({p.key: p.value for p in proto.metadata_props})
    assert meta.dynamic and meta.history[-1]["dynamic"] is True
    assert [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim[2:]] == ["images_h", "images_w"]
    for h, w in ((256, 320), (320, 192)):
        x = np.random.default_rng(h).random((1, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            ref = yolov5n(torch.from_numpy(x))
        outs = run_ort(path, x)
        assert [o.shape[2:4] for o in outs] == [(h // s, w // s) for s in (8, 16, 32)]
        for a, b in zip(outs, ref):
            assert_close_to_scale(a, b)
    with pytest.raises(AscendSlimError, match="raw head"):
        export_onnx(yolov5n, tmp_path / "bad.onnx", head="decoded", dynamic=True)
