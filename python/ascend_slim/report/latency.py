"""onnxruntime latency of several ONNX models measured side by side, so that their ratios survive a noisy machine.

Each round runs every model once, in turn (round-robin), so a burst of load from elsewhere slows all models
alike; medians over the rounds are reported. ``threads=1`` (the setting ``detect``/``eval`` use per worker, and
the one whose latency tracks FLOPs, as on the Ascend NPU) is the default; ``threads=0`` uses all cores.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AscendSlimError
from ..meta import as_hw

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}


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


def open_session(path: str | Path, threads: int = 1):
    """A CPU onnxruntime session with ``threads`` intra-op threads (0: onnxruntime's default, all cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AscendSlimError(f"cannot load ONNX model {path}: {first}") from None


def _input_for(session, img_size: tuple[int, int] | None, seed: int) -> dict[str, np.ndarray]:
    inp = session.get_inputs()[0]
    shape = list(inp.shape)
    dims = [d if isinstance(d, int) else None for d in shape]
    if None in dims[2:]:
        if img_size is None:
            raise AscendSlimError(f"model input {inp.name} has a dynamic size: give img_size")
        dims[2:] = list(img_size)
    dims[0] = dims[0] or 1
    dtype = _NUMPY_TYPES.get(inp.type, np.float32)
    rng = np.random.default_rng(seed)
    data = rng.random(dims, dtype=np.float32)
    data = (data * 255).astype(np.uint8) if dtype == np.uint8 else data.astype(dtype)
    return {inp.name: data}


def measure_latency(models: Sequence[str | Path], threads: int = 1, runs: int = 20, warmup: int = 3,
                    img_size: int | tuple[int, int] | None = None, seed: int = 0) -> list[Latency]:
    """Median latency of each model on the same random input, measured round-robin (see the module doc).

    ``img_size`` fixes the height and width of models with a dynamic input (``(h, w)`` or an int).
    """
    if not models:
        raise AscendSlimError("measure_latency needs at least one model")
    if runs < 1 or warmup < 0:
        raise AscendSlimError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    size = as_hw(img_size) if img_size is not None else None
    sessions = [open_session(m, threads) for m in models]
    feeds = [_input_for(s, size, seed) for s in sessions]
    results = [Latency(str(m), threads) for m in models]
    for _ in range(warmup):
        for s, feed in zip(sessions, feeds):
            s.run(None, feed)
    for _ in range(runs):
        for s, feed, result in zip(sessions, feeds, results):
            start = time.perf_counter()
            s.run(None, feed)
            result.samples_ms.append((time.perf_counter() - start) * 1e3)
    return results
