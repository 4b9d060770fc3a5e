"""Static INT8 quantization of an ascend-slim ONNX export with onnxruntime (QDQ format).

The pipeline is onnxruntime's recommended one: ``quant_pre_process`` (ONNX shape inference and onnxruntime's basic
graph optimisation; symbolic shape inference is skipped: the exports are CNNs whose shapes ONNX inference resolves,
and it would need sympy), then ``quantize_static`` in QDQ format with activation ranges calibrated on images
preprocessed exactly as ``eval`` does (:mod:`.calibration`). Activations are asymmetric uint8 and weights symmetric
int8, the combination onnxruntime's x86 kernels run fastest (u8s8, VNNI where the CPU has it). The head outputs
stay float, and the model facts in ``metadata_props`` are carried over with a history entry, so ``Detector``,
``detect``, ``eval`` and ``speed`` take the INT8 model as they take the float one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import onnxruntime as ort
from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

from ..errors import AscendSlimError
from ..fileio import atomic_output
from ..meta import META_KEY_PREFIX, ModelMeta
from . import DEFAULT_METHOD, float_layers
from .calibration import ORT_CALIBRATORS, LetterboxCalibrationReader, check_method, compute_ranges

MIN_ONNXRUNTIME = (1, 27)  # quantize_static(calibration_cache_path=...)
QDQ_OPSET = 13  # per-channel DequantizeLinear (``axis``) needs opset 13; exports are opset 11 for ATC
QUANTIZED_OP_TYPES = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger")


@dataclass
class QuantizeReport:
    """What :func:`quantize_model` wrote: the output, the float nodes and the history entry it recorded."""

    path: Path
    float_nodes: list[str]
    quantized_convs: int
    float_convs: int
    calibration_batches: int
    history: dict = field(default_factory=dict)


def load_float_model(path: str | Path) -> tuple[onnx.ModelProto, ModelMeta]:
    """Load an ascend-slim float export; refuse unreadable files, foreign models and already-quantized ones."""
    path = Path(path)
    if not path.is_file():
        raise AscendSlimError(f"model not found: {path} (pass an ONNX file exported by `ascend-slim export`)")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises protobuf's DecodeError and others for corrupt files
        raise AscendSlimError(f"cannot read ONNX model {path}: {str(exc).strip() or type(exc).__name__}") from None
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, source=str(path))
    quantized = sorted({n.op_type for n in model.graph.node
                        if n.op_type in QUANTIZED_OP_TYPES or n.op_type.startswith("QLinear")})
    if quantized:
        raise AscendSlimError(f"{path} is already quantized (it has {', '.join(quantized)} nodes): "
                              "quantize the float export instead")
    return model, meta


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _nearest_convs(tensors: list[str], nodes_of: dict[str, list[onnx.NodeProto]], upstream: bool) -> list[str]:
    """Names of the Conv nodes first met walking from ``tensors`` through ``nodes_of`` (their producers when
    ``upstream``, else their consumers), passing through every other op."""
    found: list[str] = []
    seen: set[str] = set()
    stack = list(tensors)
    while stack:
        for node in nodes_of.get(stack.pop(), []):
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type == "Conv":
                found.append(node.name)
            else:
                stack.extend(node.input if upstream else node.output)
    return sorted(found)


def head_convs(model: onnx.ModelProto) -> list[str]:
    """The Conv nodes whose outputs reach the graph outputs through non-Conv ops (the Detect convs)."""
    producers = {name: [node] for name, node in _producers(model.graph).items()}
    return _nearest_convs([o.name for o in model.graph.output], producers, upstream=True)


def first_convs(model: onnx.ModelProto) -> list[str]:
    """The Conv nodes first reached from the graph input (the stem)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {t.name for t in model.graph.initializer}
    return _nearest_convs([i.name for i in model.graph.input if i.name not in initializers], consumers,
                          upstream=False)


def float_node_names(model: onnx.ModelProto, exclude: Iterable[str], keep_head_float: bool,
                     keep_first_conv_float: bool) -> list[str]:
    """The nodes to leave in float: ``exclude`` (checked against the graph), the Detect convs, the stem conv."""
    return float_layers(exclude, {n.name for n in model.graph.node},
                        [n.name for n in model.graph.node if n.op_type == "Conv"],
                        head_convs(model) if keep_head_float else (),
                        first_convs(model) if keep_first_conv_float else (), kind="node")


def _opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _set_meta(model: onnx.ModelProto, meta: ModelMeta) -> None:
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(META_KEY_PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *meta.to_props().items()]:
        model.metadata_props.add(key=key, value=value)


def _conv_counts(model: onnx.ModelProto) -> tuple[int, int]:
    """(Conv nodes fed by a DequantizeLinear weight, other Conv nodes)."""
    producers = _producers(model.graph)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    quantized = sum(1 for n in convs if getattr(producers.get(n.input[1]), "op_type", "") == "DequantizeLinear")
    return quantized, len(convs) - quantized


@contextmanager
def _onnxruntime_step(what: str, source: str | Path) -> Iterator[None]:
    """Turn a failure inside onnxruntime's quantization tools into one line naming the model and the step."""
    try:
        yield
    except AscendSlimError:
        raise
    except Exception as exc:  # the tools raise onnx, protobuf and plain Python errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AscendSlimError(f"onnxruntime's quantization {what} failed on {source}: {first}") from None


def quantize_model(onnx_path: str | Path, output: str | Path, images: Sequence[str | Path], per_channel: bool = True,
                   method: str = DEFAULT_METHOD, exclude: Iterable[str] = (), keep_head_float: bool = True,
                   keep_first_conv_float: bool = True, calibration_cache: str | Path | None = None,
                   progress: bool = True) -> QuantizeReport:
    """Quantize the float export ``onnx_path`` to INT8 (QDQ) at ``output``, calibrated on ``images``.

    ``per_channel`` quantizes each Conv's weights per output channel (else one scale per tensor); ``method`` is the
    activation-range calibration: ``minmax``, ``entropy`` (KL divergence) or ``percentile`` (99.999 %).
    ``exclude`` names nodes to keep in float; ``keep_head_float`` keeps the Detect convs float and
    ``keep_first_conv_float`` the stem conv (the defaults are the measured best, see the README).
    ``calibration_cache`` (a JSON file) stores the activation ranges and is reused when it exists: it is valid
    only for the same model, images and ``method`` (the float nodes and ``per_channel`` may differ). The output
    is written atomically; the pre-pass works in a temporary folder that is always removed.
    """
    if tuple(int(part) for part in ort.__version__.split(".")[:2]) < MIN_ONNXRUNTIME:
        raise AscendSlimError(f"INT8 quantization needs onnxruntime >= {'.'.join(map(str, MIN_ONNXRUNTIME))}, "
                              f"found {ort.__version__}: pip install -U onnxruntime")
    check_method(method)
    model, meta = load_float_model(onnx_path)
    float_nodes = float_node_names(model, exclude, keep_head_float, keep_first_conv_float)
    inp = model.graph.input[0]
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise AscendSlimError(f"{onnx_path} takes a non-float32 input: quantize the float32 export")
    if not images:
        raise AscendSlimError("no calibration images given")
    with tempfile.TemporaryDirectory(prefix="ascend-slim-quant-") as tmp:
        source, prepared, quantized = (Path(tmp) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        if _opset(model) < QDQ_OPSET:
            model = onnx.version_converter.convert_version(model, QDQ_OPSET)
        onnx.save(model, str(source))  # the pre-pass mishandles an in-memory model with unused initializers
        with _onnxruntime_step("pre-pass", onnx_path):
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        ranges = Path(calibration_cache) if calibration_cache else Path(tmp) / "ranges.json"
        if not ranges.is_file():
            compute_ranges(prepared, LetterboxCalibrationReader(images, meta, inp.name, progress=progress), method,
                           ranges)
        with _onnxruntime_step("quantization", onnx_path):
            quantize_static(prepared, quantized, None, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=float_nodes, calibrate_method=ORT_CALIBRATORS[method][0],
                            calibration_cache_path=ranges)
        result = onnx.load(str(quantized))
    entry = {"action": "quantize_int8", "format": "QDQ", "activations": "uint8 asymmetric per-tensor",
             "weights": f"int8 symmetric {'per-channel' if per_channel else 'per-tensor'}", "method": method,
             "calibration_images": len(images), "float_nodes": float_nodes, "onnxruntime": ort.__version__}
    meta.history.append(entry)
    _set_meta(result, meta)
    onnx.checker.check_model(result)
    output = Path(output)
    with atomic_output(output) as tmp_out:
        onnx.save(result, str(tmp_out))
    quantized_convs, float_convs = _conv_counts(result)
    batches = -(-len(images) // meta.batch)
    return QuantizeReport(output, float_nodes, quantized_convs, float_convs, batches, entry)
