"""ONNX export for Ascend ATC (opset 11) and onnxruntime: static shapes, BN fused, model facts in metadata; and the
OpenVINO IR made from that export (same facts, in its ``rt_info``)."""

from __future__ import annotations

import copy
import io
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from .errors import AscendSlimError
from .fileio import atomic_output
from .limits import BATCH_SIZE, IMAGE_SIZE, ONNX_OPSET, check_range
from .meta import HEAD_LAYOUTS, as_hw, raw_head_names
from .model.common import Focus
from .model.yolo import YOLOv5


class _RawHeads(nn.Module):
    """Outputs the nl post-permute logit tensors ``[N, na, ny, nx, 5 + nc]`` (no decode subgraph)."""

    def __init__(self, model: YOLOv5) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(x))


class _DecodedHead(nn.Module):
    """Outputs one ``[N, K, 5 + nc]`` tensor; grids are constants for the fixed input size."""

    def __init__(self, model: YOLOv5, img_size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        shapes = [(int(img_size[0] // s), int(img_size[1] // s)) for s in model.strides]
        self.grids = model.detect.make_grids(shapes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.decode(self.model(x), self.grids)


def deployable(model: YOLOv5) -> YOLOv5:
    """A copy for inference export: fp32, eval mode, BN fused, each Focus stem as one strided conv (no slicing)."""
    out = copy.deepcopy(model).float().eval().fuse()
    for i, m in enumerate(out.model):
        if isinstance(m, Focus):
            conv = m.as_conv()
            conv.f, conv.i = m.f, m.i
            out.model[i] = conv
    return out


def _size(img_size: int | tuple[int, int], stride: int) -> tuple[int, int]:
    h, w = as_hw(img_size)
    check_range("image height", h, IMAGE_SIZE)
    check_range("image width", w, IMAGE_SIZE)
    if h % stride or w % stride:
        raise AscendSlimError(f"image size {h}x{w} must be multiples of the model stride {stride}")
    return h, w


def export_onnx(model: YOLOv5, path: str | Path, img_size: int | tuple[int, int] = 640, batch: int = 1,
                opset: int = 11, head: str = "raw", history_note: str | None = None, dynamic: bool = False) -> Path:
    """Export ``model`` to ONNX at a static ``[batch, 3, h, w]`` input named ``images``; written atomically.

    ``dynamic=True`` (raw head only, for onnxruntime; ATC needs static shapes) lets height and width vary, so
    images can be letterboxed to the smallest stride multiple as Ultralytics ``detect.py`` does.

    ``head="raw"``: outputs ``head0..head{nl-1}`` in stride order, each ``[batch, na, h/s, w/s, 5 + nc]`` logits
    (what Ascend's YOLOv5 postprocessors and the C++ core decode). ``head="decoded"``: one output ``output0``
    ``[batch, K, 5 + nc]`` (xywh pixels, sigmoid scores). ``metadata_props`` carry :class:`ModelMeta`, with an
    export step (and ``history_note``) appended to the model history.
    """
    if head not in HEAD_LAYOUTS:
        raise AscendSlimError(f"unknown head layout {head!r}: choose 'raw' or 'decoded'")
    check_range("batch", batch, BATCH_SIZE)
    check_range("ONNX opset", opset, ONNX_OPSET)
    if dynamic and head != "raw":
        raise AscendSlimError("dynamic input sizes need the raw head (the decoded head bakes in its grids)")
    size = _size(img_size, int(max(model.strides)))
    net = deployable(model)
    wrapper = _RawHeads(net) if head == "raw" else _DecodedHead(net, size)
    outputs = raw_head_names(len(net.strides)) if head == "raw" else ["output0"]
    axes = {name: {2: f"{name}_h", 3: f"{name}_w"} for name in ["images", *outputs]} if dynamic else None
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter is deliberate: it is the one that writes opset 11 (what ATC accepts)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapper, (torch.zeros(batch, 3, *size),), buffer, opset_version=opset, dynamo=False,
                          input_names=["images"], output_names=outputs, do_constant_folding=True,
                          dynamic_axes=axes)
    proto = onnx.load_from_string(buffer.getvalue())
    step = {"action": "export_onnx", "opset": opset, "head": head, "img_size": list(size), "batch": batch,
            "dynamic": dynamic, **({"note": history_note} if history_note else {})}
    meta = net.meta(size, head=head, batch=batch, dynamic=dynamic, history=[step])
    for key, value in meta.to_props().items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    path = Path(path)
    with atomic_output(path) as tmp:
        onnx.save(proto, str(tmp))
    return path


EXPORT_FORMATS = ("onnx", "openvino")


def export_openvino(model: YOLOv5, path: str | Path, img_size: int | tuple[int, int] = 640, batch: int = 1,
                    head: str = "raw", dynamic: bool = False, opset: int = 11) -> Path:
    """Export ``model`` as an OpenVINO IR ``path`` (``.xml`` + ``.bin``, FP32): the ONNX export of
    :func:`export_onnx` (same arguments) converted by OpenVINO, carrying the same model facts. Needs the
    ``openvino`` extra."""
    from .openvino_ir import IR_SUFFIX, convert_onnx, import_openvino

    import_openvino()
    if Path(path).suffix.lower() != IR_SUFFIX:
        raise AscendSlimError(f"an OpenVINO IR is written as a .xml file (its weights beside it as .bin), not {path}")
    with tempfile.TemporaryDirectory(prefix="ascend-slim-ir-") as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", img_size=img_size, batch=batch, opset=opset,
                                head=head, dynamic=dynamic)
        return convert_onnx(onnx_path, path)
