"""Latency of several models measured side by side on one CPU runtime (onnxruntime, or OpenVINO for ``.xml`` IRs
and ONNX exports), so that their ratios survive a noisy machine.

Each round runs every model once, in turn (round-robin), so a burst of load from elsewhere slows all models
alike; medians over the rounds are reported. ``threads=1`` (the setting ``detect``/``eval`` use per worker, and
the one whose latency tracks FLOPs, as on the Ascend NPU) is the default; ``threads=0`` uses all cores.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import AscendSlimError
from ..meta import as_hw
from ..runtime.onnx_session import numpy_dtype, open_session


@dataclass
class Latency:
    """Wall-clock milliseconds of one model's ``session.run`` over the timed rounds."""

    path: str
    threads: int
    samples_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 90))

    def to_dict(self) -> dict:
        return {"path": self.path, "threads": self.threads, "median_ms": self.median_ms, "p90_ms": self.p90_ms,
                "runs": len(self.samples_ms)}


def _input_dims(name: str, shape: Sequence[object], img_size: tuple[int, int] | None) -> list[int]:
    """The input shape to time: dynamic height and width set to ``img_size``, a dynamic batch to 1."""
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if None in dims[2:]:
        if img_size is None:
            raise AscendSlimError(f"model input {name} has a dynamic size: give img_size")
        dims[2:] = list(img_size)
    dims[0] = dims[0] or 1
    return dims


def _random_input(dims: list[int], dtype: type, seed: int) -> np.ndarray:
    data = np.random.default_rng(seed).random(dims, dtype=np.float32)
    return (data * 255).astype(np.uint8) if dtype == np.uint8 else data.astype(dtype)


def _onnxruntime_call(model: str | Path, threads: int, img_size: tuple[int, int] | None,
                      seed: int) -> Callable[[], object]:
    session = open_session(model, threads)
    inp = session.get_inputs()[0]
    feed = {inp.name: _random_input(_input_dims(inp.name, inp.shape, img_size), numpy_dtype(inp.type), seed)}
    return partial(session.run, None, feed)


def _openvino_call(model: str | Path, threads: int, img_size: tuple[int, int] | None,
                   seed: int) -> Callable[[], object]:
    from ..openvino_ir import read_model
    from ..runtime.openvino_backend import compile_model

    ov_model = read_model(model)[0]
    inp = ov_model.inputs[0]
    dims = _input_dims(inp.get_any_name(), [d.get_length() if d.is_static else None
                                            for d in inp.get_partial_shape()], img_size)
    ov_model.reshape({0: dims})
    compiled = compile_model(ov_model, threads or None, source=str(model))
    request, feed = compiled.create_infer_request(), {0: _random_input(dims, np.float32, seed)}

    def infer() -> object:
        return compiled and request.infer(feed)  # holds the compiled model as long as its request

    return infer


RUNTIME_CALLS = {"onnxruntime": _onnxruntime_call, "openvino": _openvino_call}


def measure_latency(models: Sequence[str | Path], threads: int = 1, runs: int = 20, warmup: int = 3,
                    img_size: int | tuple[int, int] | None = None, seed: int = 0,
                    clock: Callable[[], float] = time.perf_counter,
                    runtime: str | Sequence[str] = "onnxruntime") -> list[Latency]:
    """Median latency of each model on the same random input, measured round-robin (see the module doc) on
    ``runtime`` (``onnxruntime``, or ``openvino`` with one stream and the latency hint), or on ``runtime[k]`` for
    ``models[k]`` (one model on several runtimes, side by side).

    ``img_size`` fixes the height and width of models with a dynamic input (``(h, w)`` or an int). ``clock``
    (seconds) is read before and after each timed run; tests inject a deterministic one.
    """
    runtimes = [runtime] * len(models) if isinstance(runtime, str) else list(runtime)
    unknown = [r for r in runtimes if r not in RUNTIME_CALLS]
    if unknown or len(runtimes) != len(models):
        raise AscendSlimError(f"unknown runtime {unknown[0] if unknown else runtime!r}: choose "
                              f"{' or '.join(RUNTIME_CALLS)}, one for all models or one per model")
    if not models:
        raise AscendSlimError("measure_latency needs at least one model")
    if runs < 1 or warmup < 0:
        raise AscendSlimError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    size = as_hw(img_size) if img_size is not None else None
    calls = [RUNTIME_CALLS[name](m, threads, size, seed) for m, name in zip(models, runtimes)]
    results = [Latency(str(m), threads) for m in models]
    for _ in range(warmup):
        for call in calls:
            call()
    for _ in range(runs):
        for call, result in zip(calls, results):
            start = clock()
            call()
            result.samples_ms.append((clock() - start) * 1e3)
    return results


class OnnxLatencyRatio:
    """The measured latency model of the prune planner (:data:`ascend_slim.prune.planner.LatencyRatio`): a
    candidate's onnxruntime latency over ``original``'s, both exported to static ``img_size`` ONNX and timed
    side by side (:func:`measure_latency`, ``threads`` threads, medians of ``runs`` rounds). A context manager:
    the exports live in a temporary folder while it is open."""

    def __init__(self, original, img_size: int = 640, runs: int = 20, threads: int = 1,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.original, self.img_size, self.runs, self.threads, self.clock = original, img_size, runs, threads, clock
        self.settings = {"threads": threads, "runs": runs}  # recorded with the plan
        self._folder: tempfile.TemporaryDirectory | None = None
        self._count = 0

    def __enter__(self) -> OnnxLatencyRatio:
        self._folder = tempfile.TemporaryDirectory(prefix="ascend-slim-latency-")
        self._original_onnx = self._export(self.original)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def _export(self, model) -> Path:
        from ..export import export_onnx

        if self._folder is None:
            raise AscendSlimError("OnnxLatencyRatio measures inside its `with` block only")
        self._count += 1
        return export_onnx(model, Path(self._folder.name) / f"m{self._count}.onnx", img_size=self.img_size)

    def __call__(self, candidate) -> float:
        path = self._export(candidate)
        base, pruned = measure_latency([self._original_onnx, path], threads=self.threads,
                                       runs=self.runs, img_size=self.img_size, clock=self.clock)
        return pruned.median_ms / base.median_ms
