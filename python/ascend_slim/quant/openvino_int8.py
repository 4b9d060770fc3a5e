"""INT8 for OpenVINO: NNCF post-training quantization of a float IR (or ONNX export) into an INT8 IR.

The same choices as the onnxruntime route (:mod:`.static`): the stem conv and the Detect convs stay float (NNCF's
defaults quantize them and lose about 3 mAP points on yolov5n/VOC), calibration images are letterboxed exactly as
``eval`` feeds the model (:class:`~.calibration.LetterboxCalibrationReader`), activations asymmetric and weights
symmetric per channel (NNCF's ``mixed`` preset). Needs the ``openvino`` extra (openvino, nncf).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import AscendSlimError
from ..openvino_ir import EXTRA_HINT, read_model, save_ir
from . import float_layers
from .calibration import LetterboxCalibrationReader
from .static import QuantizeReport

QUANTIZED_OV_OPS = ("FakeQuantize", "FakeConvert")


def _import_nncf() -> Any:
    try:
        import nncf
    except ImportError:
        raise AscendSlimError(f"NNCF is not installed: {EXTRA_HINT}") from None
    return nncf


def _nearest_convs(start: Iterable[Any], neighbours: Callable[[Any], list[Any]]) -> list[str]:
    """Friendly names of the Convolution ops first met walking from ``start`` through ``neighbours``."""
    found: list[str] = []
    seen: set[str] = set()
    stack = list(start)
    while stack:
        for node in neighbours(stack.pop()):
            name = node.get_friendly_name()
            if name in seen:
                continue
            seen.add(name)
            if node.get_type_name() == "Convolution":
                found.append(name)
            else:
                stack.append(node)
    return sorted(found)


def head_convs(model: Any) -> list[str]:
    """The Convolution ops whose outputs reach the model outputs through non-conv ops (the Detect convs)."""
    return _nearest_convs(model.get_results(), lambda node: [v.get_node() for v in node.input_values()])


def first_convs(model: Any) -> list[str]:
    """The Convolution ops first reached from the model input (the stem)."""
    return _nearest_convs(model.get_parameters(), lambda node: [
        t.get_node() for out in node.outputs() for t in out.get_target_inputs()])


def float_op_names(model: Any, exclude: Iterable[str], keep_head_float: bool, keep_first_conv_float: bool) -> list[str]:
    """The ops to keep float: ``exclude`` (checked against the model), the Detect convs, the stem conv."""
    convs = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    return float_layers(exclude, {op.get_friendly_name() for op in model.get_ops()}, convs,
                        head_convs(model) if keep_head_float else (),
                        first_convs(model) if keep_first_conv_float else (), kind="op")


def quantize_openvino(float_model: str | Path, output: str | Path, images: Sequence[str | Path],
                      exclude: Iterable[str] = (), keep_head_float: bool = True, keep_first_conv_float: bool = True,
                      progress: bool = True) -> QuantizeReport:
    """Quantize the float model ``float_model`` (an ascend-slim IR ``.xml`` or ONNX export) with NNCF into the INT8
    IR ``output`` (written whole or not at all), calibrated on ``images`` (every one of them, letterboxed as
    ``eval`` does). ``exclude``, ``keep_head_float`` and ``keep_first_conv_float`` choose the float ops as
    :func:`~.static.quantize_model` does; ``QuantizeReport.quantized_convs`` counts the convs NNCF quantized.
    ``progress`` False keeps NNCF's log to errors."""
    nncf = _import_nncf()
    model, meta = read_model(float_model)
    quantized = sorted({op.get_type_name() for op in model.get_ops() if op.get_type_name() in QUANTIZED_OV_OPS})
    if quantized:
        raise AscendSlimError(f"{float_model} is already quantized (it has {', '.join(quantized)} ops): "
                              "quantize the float model instead")
    if not images:
        raise AscendSlimError("no calibration images given")
    float_ops = float_op_names(model, exclude, keep_head_float, keep_first_conv_float)
    reader = LetterboxCalibrationReader(images, meta, model.inputs[0].get_any_name(), progress=False)  # NNCF has a bar
    nncf.set_log_level(logging.INFO if progress else logging.ERROR)
    dataset = nncf.Dataset(reader.batches, reader.tensor)
    try:
        result = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.MIXED, subset_size=len(reader),
                               ignored_scope=nncf.IgnoredScope(names=float_ops))
    except AscendSlimError:
        raise
    except Exception as exc:  # NNCF raises its own and OpenVINO's errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AscendSlimError(f"NNCF quantization failed on {float_model}: {first}") from None
    finally:
        reader.close()
    convs = [op for op in result.get_ordered_ops() if op.get_type_name() == "Convolution"]
    int8_convs = sum(1 for op in convs if op.input_value(1).get_node().get_type_name() != "Constant")
    entry = {"action": "quantize_int8", "format": "OpenVINO IR (NNCF FakeQuantize)", "preset": "mixed",
             "activations": "uint8 asymmetric per-tensor", "weights": "int8 symmetric per-channel",
             "calibration_images": len(images), "float_nodes": float_ops, "nncf": nncf.__version__}
    meta.history.append(entry)
    path = save_ir(result, meta, output)
    return QuantizeReport(path, float_ops, int8_convs, len(convs) - int8_convs, len(reader), entry)
