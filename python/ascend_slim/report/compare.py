"""Two model files side by side: parameters, GFLOPs, file sizes, onnxruntime latency and, optionally, VOC mAP; or
one model across the CPU runtimes installed (:func:`compare_runtimes`: latency and mAP on each).

Accepts ``.pt`` checkpoints (exported here to a static ONNX at the image size) and ``.onnx`` files, float or
INT8 (QDQ ``QuantizeLinear``/``DequantizeLinear`` around ``Conv``, or ``QLinearConv``/``ConvInteger``).
Parameters and GFLOPs of ONNX files are counted on the graph with the convention of
:mod:`ascend_slim.model.cost` (conv weights and biases; 2 x MACs, one MAC per bias), so a checkpoint and
its export give the same numbers. Latency of both models is measured in one round-robin run
(:func:`~.latency.measure_latency`), single-threaded and on all cores. Torch is imported only for ``.pt``.

A static ONNX model is measured at its own input size, whatever ``img_size`` says (a checkpoint or a dynamic
ONNX at ``img_size``); each model's size is a row of the table, and when the two differ the size-dependent
ratios (GFLOPs, latency, mAP) are left out with a note saying why.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..errors import AscendSlimError
from .latency import measure_latency
from .machine import cpu_info

# conv-like ONNX ops: (weight input, bias input)
_CONV_INPUTS = {"Conv": (1, 2), "ConvInteger": (1, None), "QLinearConv": (3, 8)}


@dataclass
class ModelFacts:
    """What :func:`compare_models` measured for one model file."""

    path: str
    img_size: tuple[int, int]  # (height, width) it was measured at: a static ONNX model's own size
    params: int
    gflops: float
    checkpoint_bytes: int | None  # the .pt file; None for an ONNX input
    onnx_bytes: int
    latency_ms: dict[str, float] = field(default_factory=dict)  # "1 thread", "all cores": medians
    map: dict[str, float] = field(default_factory=dict)  # ap50_voc07, ap50, ap50_95 when data was given


def _conv_output_shapes(model: onnx.ModelProto, names: list[str], img_size: int) -> list[tuple[int, ...]]:
    """Shapes of the tensors ``names`` in one onnxruntime run on a zero image of ``img_size`` (works for any
    op set onnxruntime runs, including com.microsoft INT8 ops that ONNX shape inference does not know)."""
    from ..runtime.onnx_session import numpy_dtype, open_session

    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    session = open_session(model.SerializeToString())
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else (1 if k == 0 else img_size) for k, d in enumerate(inp.shape)]
    return [o.shape for o in session.run(names, {inp.name: np.zeros(shape, dtype=numpy_dtype(inp.type))})]


def onnx_cost(path: str | Path, img_size: int = 640) -> tuple[int, float]:
    """``(params, GFLOPs)`` of an ONNX detector's convolutions (dynamic sizes are set to ``img_size``)."""
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends for unreadable files
        raise AscendSlimError(f"cannot read ONNX model {path}: {str(exc).strip().splitlines()[0]}") from None
    graph = model.graph
    init = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}

    def stored(name: str) -> onnx.TensorProto | None:
        """The stored tensor behind ``name``, looking through DequantizeLinear (QDQ INT8 weights)."""
        node = producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear":
            name = node.input[0]
        return init.get(name)

    convs = []  # (output name, weight dims, bias element count or None)
    for node in graph.node:
        if node.op_type in _CONV_INPUTS:
            w_in, b_in = _CONV_INPUTS[node.op_type]
            weight = stored(node.input[w_in])
            bias = stored(node.input[b_in]) if b_in is not None and len(node.input) > b_in and node.input[b_in] \
                else None
            if weight is None:
                raise AscendSlimError(f"{path}: conv {node.name or node.output[0]} has computed weights: cannot count")
            convs.append((node.output[0], list(weight.dims), None if bias is None else int(np.prod(bias.dims))))
    if not convs:
        raise AscendSlimError(f"{path} has no convolutions: not a YOLOv5 detector")
    shapes = _conv_output_shapes(model, [c[0] for c in convs], img_size)
    params = sum(int(np.prod(w)) + (b or 0) for _, w, b in convs)
    macs = sum(int(np.prod(shape)) * (int(np.prod(w[1:])) + (b is not None)) for (_, w, b), shape in zip(convs, shapes))
    return params, 2 * macs / 1e9


def onnx_input_size(path: str | Path, img_size: int) -> tuple[int, int]:
    """``(height, width)`` an ONNX model runs at: its own for a static input, else ``img_size`` square."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for unreadable files
        raise AscendSlimError(f"cannot read ONNX model {path}: {str(exc).strip().splitlines()[0]}") from None
    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in inputs[0].type.tensor_type.shape.dim] \
        if inputs else []
    return (dims[2], dims[3]) if len(dims) == 4 and dims[2] > 0 and dims[3] > 0 else (img_size, img_size)


def _onnx_for(path: Path, img_size: int, export_to: Path) -> tuple[ModelFacts, Path]:
    """Facts that need no timing, and the ONNX file to time (an export for a ``.pt``)."""
    if path.suffix.lower() == ".onnx":
        params, gflops = onnx_cost(path, img_size)
        size = onnx_input_size(path, img_size)
        return ModelFacts(str(path), size, params, gflops, None, path.stat().st_size), path
    if path.suffix.lower() != ".pt":
        raise AscendSlimError(f"{path}: report compares .pt checkpoints and .onnx models")
    from ..export import deployable, export_onnx
    from ..model.checkpoint import load_weights
    from ..model.cost import model_cost

    model, _ = load_weights(path)
    cost = model_cost(deployable(model), img_size)
    exported = export_onnx(model, export_to, img_size=img_size)
    return ModelFacts(str(path), (img_size, img_size), cost.params, cost.gflops, path.stat().st_size,
                      exported.stat().st_size), exported


def voc_map(model: str | Path, data: str | Path, img_size: int | None = 640, split: str = "test",
            progress: bool = True) -> dict[str, float]:
    """The headline mAPs (:data:`~ascend_slim.evaluation.HEADLINE_METRICS`) of a model file on ``split`` of
    ``data`` (``img_size`` None: the model's own), by :func:`~ascend_slim.evaluation.evaluate_file` (what
    ``eval`` and the slim recipe run)."""
    from ..evaluation import evaluate_file, evaluation_set, headline_metrics

    return headline_metrics(evaluate_file(model, evaluation_set(data, split), img_size=img_size,
                                          progress=progress).result)


@dataclass
class Comparison:
    """Facts of model A (and B), the image size and the machine; renders as text, Markdown or a dict."""

    models: list[ModelFacts]
    img_size: int
    machine: dict

    @property
    def sizes_differ(self) -> bool:
        """True when the models were measured at different input sizes (a static ONNX at its own)."""
        return len({m.img_size for m in self.models}) > 1

    def notes(self) -> list[str]:
        """Lines on models measured at another size than ``img_size`` (static ONNX) and on missing ratios."""
        own = [(label, m.img_size) for label, m in zip("AB", self.models) if m.img_size != (self.img_size,) * 2]
        lines = [f"note: {label} is a static ONNX model, measured at its own input size {w}x{h}, not at "
                 f"{self.img_size}" for label, (h, w) in own]
        if self.sizes_differ:
            lines.append("note: A and B run at different input sizes: GFLOPs, latency and mAP are not comparable, "
                         "so their B/A is left out; export both at one size to compare them")
        return lines

    def rows(self) -> list[list[str]]:
        """Header and one row per quantity: name, A, [B, B/A]."""
        def mb(n: int | None) -> str:
            return "-" if n is None else f"{n / 1e6:.2f}"

        sizes = {m.img_size for m in self.models}
        gflops = f"GFLOPs @{next(iter(sizes))[1]}" if len(sizes) == 1 else "GFLOPs at input size"
        quantities = [("input size", lambda m: m.img_size, lambda v: f"{v[1]}x{v[0]}", False),
                      ("params", lambda m: m.params, lambda v: f"{v:,}", True),
                      (gflops, lambda m: m.gflops, lambda v: f"{v:.2f}", not self.sizes_differ),
                      ("checkpoint MB", lambda m: m.checkpoint_bytes, mb, True),
                      ("ONNX MB", lambda m: m.onnx_bytes, mb, True)]
        quantities += [(f"latency {k} ms", lambda m, k=k: m.latency_ms.get(k), lambda v: f"{v:.1f}",
                        not self.sizes_differ) for k in self.models[0].latency_ms]
        quantities += [(f"mAP {k}", lambda m, k=k: m.map.get(k), lambda v: f"{v:.4f}", not self.sizes_differ)
                       for k in self.models[0].map]
        header = ["", "A", *(["B", "B/A"] if len(self.models) > 1 else [])]
        rows = [header]
        for name, get, fmt, ratio in quantities:
            values = [get(m) for m in self.models]
            row = [name, *("-" if v is None else fmt(v) for v in values)]
            if len(values) > 1:
                row.append(f"{values[1] / values[0]:.3f}" if ratio and values[0] and values[1] is not None else "-")
            rows.append(row)
        return rows

    def format_table(self) -> str:
        rows = self.rows()
        sizes = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(n) if c == 0 else cell.rjust(n) for c, (cell, n) in enumerate(zip(r, sizes)))
                 for r in rows]
        names = [f"{label}: {m.path}" for label, m in zip("AB", self.models)]
        return "\n".join([*names, "", *lines, *self.notes()])

    def format_markdown(self) -> str:
        rows = self.rows()
        head = ["quantity", *rows[0][1:]]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        names = [f"- {label}: `{m.path}`" for label, m in zip("AB", self.models)]
        return "\n".join([*names, "", *lines, "", *(f"{note}  " for note in self.notes()),
                          f"Image size {self.img_size}; CPU {self.machine['model']} ({self.machine['cores']} "
                          "cores)."]) + "\n"

    def to_dict(self) -> dict:
        return {"img_size": self.img_size, "sizes_differ": self.sizes_differ,
                "models": [asdict(m) for m in self.models], "machine": self.machine}


def compare_models(weights: str | Path, compare: str | Path | None = None, *, img_size: int = 640,
                   data: str | Path | None = None, split: str = "", runs: int = 20,
                   warmup: int = 3) -> Comparison:
    """Measure ``weights`` (and ``compare``) at ``img_size`` (a static ONNX model at its own size); latency of
    both in one round-robin run, on one thread and on all cores; mAP when ``data`` (a VOCdevkit folder or a data
    yaml) is given, on ``split`` (default: the validation split of ``data``'s kind, test for VOC)."""
    paths = [Path(p) for p in (weights, compare) if p is not None]
    for p in paths:
        if not p.is_file():
            raise AscendSlimError(f"model {p} not found")
    with tempfile.TemporaryDirectory(prefix="ascend-slim-report-") as tmp:
        facts, onnx_paths = zip(*(_onnx_for(p, img_size, Path(tmp) / f"{k}.onnx") for k, p in enumerate(paths)))
        for threads, key in ((1, "1 thread"), (0, "all cores")):
            for fact, latency in zip(facts, measure_latency(onnx_paths, threads=threads, runs=runs, warmup=warmup,
                                                            img_size=img_size)):
                fact.latency_ms[key] = latency.median_ms
        if data is not None:
            from ..data.samples import resolve_splits

            split = split or resolve_splits(data)[1]
            for fact, path in zip(facts, onnx_paths):
                fact.map = voc_map(path, data, img_size if fact.img_size == (img_size, img_size) else None, split)
    return Comparison(list(facts), img_size, cpu_info())


@dataclass
class RuntimeFacts:
    """What :func:`compare_runtimes` measured for the model on one runtime."""

    runtime: str
    latency_ms: dict[str, float] = field(default_factory=dict)  # "1 thread", "all cores": medians
    map: dict[str, float] = field(default_factory=dict)


@dataclass
class RuntimeComparison:
    """One model on each installed runtime; renders as text or a dict (speed-ups against the first runtime)."""

    path: str
    img_size: tuple[int, int]
    runtimes: list[RuntimeFacts]
    machine: dict

    def rows(self) -> list[list[str]]:
        first = self.runtimes[0]
        header = ["", *(r.runtime for r in self.runtimes),
                  *(f"{r.runtime} speed-up" for r in self.runtimes[1:])]
        rows = [header]
        for key in first.latency_ms:
            rows.append([f"latency {key} ms", *(f"{r.latency_ms[key]:.1f}" for r in self.runtimes),
                         *(f"{first.latency_ms[key] / r.latency_ms[key]:.2f}x" for r in self.runtimes[1:])])
        for key in first.map:
            rows.append([f"mAP {key}", *(f"{r.map[key]:.4f}" for r in self.runtimes),
                         *(f"{100 * (r.map[key] - first.map[key]):+.2f} pts" for r in self.runtimes[1:])])
        return rows

    def format_table(self) -> str:
        from .machine import describe_cpu

        rows = self.rows()
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(n) if c == 0 else cell.rjust(n) for c, (cell, n) in enumerate(zip(r, widths)))
                 for r in rows]
        h, w = self.img_size
        return "\n".join([f"{self.path} at {w}x{h} on each runtime (side by side, round-robin medians)", "", *lines,
                          "", f"CPU: {describe_cpu(self.machine)}"])

    def to_dict(self) -> dict:
        return {"path": self.path, "img_size": list(self.img_size), "runtimes": [asdict(r) for r in self.runtimes],
                "machine": self.machine}


def compare_runtimes(weights: str | Path, *, img_size: int = 640, data: str | Path | None = None, split: str = "",
                     runs: int = 20, warmup: int = 3, runtimes: list[str] | None = None) -> RuntimeComparison:
    """Time ``weights`` (a ``.pt``, exported here to a static ONNX at ``img_size``, or an ``.onnx``: a static one at
    its own size) on each of ``runtimes`` (default: every one installed), all in one round-robin run, on one
    thread and on all cores; score it on each when ``data`` is given (as :func:`compare_models`)."""
    from ..runtime.factory import installed_runtimes

    path = Path(weights)
    if not path.is_file():
        raise AscendSlimError(f"model {path} not found")
    if path.suffix.lower() not in (".pt", ".onnx"):
        raise AscendSlimError(f"{path}: comparing runtimes needs a model every runtime reads, a .pt or an .onnx")
    names = runtimes or installed_runtimes()
    with tempfile.TemporaryDirectory(prefix="ascend-slim-runtimes-") as tmp:
        facts, onnx_path = _onnx_for(path, img_size, Path(tmp) / "model.onnx")
        rows = [RuntimeFacts(name) for name in names]
        for threads, key in ((1, "1 thread"), (0, "all cores")):
            latencies = measure_latency([onnx_path] * len(names), threads=threads, runs=runs, warmup=warmup,
                                        img_size=img_size, runtime=names)
            for row, latency in zip(rows, latencies):
                row.latency_ms[key] = latency.median_ms
        if data is not None:
            from ..data.samples import resolve_splits
            from ..evaluation import evaluate_file, evaluation_set, headline_metrics

            dataset = evaluation_set(data, split or resolve_splits(data)[1])
            size = img_size if facts.img_size == (img_size, img_size) else None
            for row in rows:
                row.map = headline_metrics(evaluate_file(onnx_path, dataset, img_size=size, backend=row.runtime).result)
    return RuntimeComparison(str(path), facts.img_size, rows, cpu_info())
