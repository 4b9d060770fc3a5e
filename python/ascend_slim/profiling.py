"""Wall-clock stage timing shared by ``speed``, ``eval`` and the benchmarks, and the CPU time of a process tree."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

STAGES = ("decode", "preprocess", "inference", "postprocess")


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (loader workers, subprocesses)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class StageTimes:
    """Thread-safe record of per-call wall-clock durations (``time.perf_counter``) for named stages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.samples[stage].append(elapsed)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage: calls, total seconds, p50 and p90 milliseconds."""
        with self._lock:
            items = {k: np.asarray(v) for k, v in self.samples.items() if v}
        return {stage: {"calls": int(v.size), "total_s": float(v.sum()),
                        "p50_ms": float(np.percentile(v, 50) * 1e3),
                        "p90_ms": float(np.percentile(v, 90) * 1e3)}
                for stage, v in items.items()}


@contextmanager
def maybe_measure(times: StageTimes | None, stage: str) -> Iterator[None]:
    """``times.measure(stage)`` when timing is on, otherwise nothing."""
    if times is None:
        yield
    else:
        with times.measure(stage):
            yield
