"""What a scored candidate measured, and the run folder's cache of it (JSON, written atomically)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AscendSlimError
from ..evaluation.bootstrap import DifferenceInterval
from ..fileio import atomic_write_text
from .candidates import Candidate

CACHE_VERSION = 1
STAGES = ("size", "cut", "int8")


@dataclass(frozen=True)
class Measurement:
    """One scored candidate.

    ``latency``: the candidate's latency over the original's at its default size (0.25 = 4x faster), an
    estimate (e.g. a FLOPs model) when ``latency_estimated``. ``map50``: mAP@0.5 VOC07 on the selection split.
    ``delta``: paired bootstrap of (candidate − original) mAP over the selection images. ``cpu_seconds``: CPU
    time spent measuring it, timing included (this process and its finished children). ``stage``: the search
    stage that scored it.
    """

    candidate: Candidate
    latency: float
    latency_estimated: bool
    map50: float
    delta: DifferenceInterval
    cpu_seconds: float
    stage: str

    @property
    def speedup(self) -> float:
        return 1.0 / self.latency

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate.to_dict(), "key": self.candidate.key, "latency": self.latency,
                "latency_estimated": self.latency_estimated, "map50": self.map50, "delta": self.delta.to_dict(),
                "cpu_seconds": self.cpu_seconds, "stage": self.stage}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(Candidate.from_dict(data["candidate"]), float(data["latency"]), bool(data["latency_estimated"]),
                   float(data["map50"]), DifferenceInterval.from_dict(data["delta"]), float(data["cpu_seconds"]),
                   str(data["stage"]))


class MeasurementCache:
    """Every measurement of one search, keyed by :attr:`Candidate.key`, in a JSON file rewritten atomically
    after each addition, so an interrupted search loses nothing and a resumed one re-measures nothing.

    ``context`` names what the numbers depend on besides the candidate (model, selection split, latency model,
    bootstrap settings, ...); a file written under another context is refused rather than mixed in.
    Latencies are kept apart from measurements: the search may time a candidate and then decide not to score it.
    """

    def __init__(self, path: str | Path, context: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.context = json.loads(json.dumps(dict(context)))  # as it reads back from the file
        self.measurements: dict[str, Measurement] = {}
        self.latencies: dict[str, tuple[float, float]] = {}  # key -> (latency ratio, CPU seconds to time it)
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") != CACHE_VERSION:
                raise ValueError(f"version {data.get('version')}, expected {CACHE_VERSION}")
            stored = data["context"]
            measurements = {k: Measurement.from_dict(v) for k, v in data["measurements"].items()}
            latencies = {k: (float(v["ratio"]), float(v["cpu_seconds"])) for k, v in data["latencies"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AscendSlimError(f"search cache {self.path} is unreadable ({exc}): delete it to search afresh") \
                from None
        if stored != self.context:
            changed = sorted(k for k in set(stored) | set(self.context) if stored.get(k) != self.context.get(k))
            raise AscendSlimError(f"search cache {self.path} was written for other settings ({', '.join(changed)} "
                                  "differ): use a new run folder or delete the cache")
        self.measurements, self.latencies = measurements, latencies

    def save(self) -> None:
        data = {"version": CACHE_VERSION, "context": self.context,
                "latencies": {k: {"ratio": r, "cpu_seconds": s} for k, (r, s) in self.latencies.items()},
                "measurements": {k: m.to_dict() for k, m in self.measurements.items()}}
        atomic_write_text(self.path, json.dumps(data) + "\n")

    @property
    def reference_path(self) -> Path:
        """Where the original's per-image match records are kept (a resumed search bootstraps against them)."""
        return self.path.with_name(self.path.stem + ".original.npz")

    def add_latency(self, candidate: Candidate, ratio: float, cpu_seconds: float) -> None:
        self.latencies[candidate.key] = (ratio, cpu_seconds)
        self.save()

    def add(self, measurement: Measurement) -> None:
        self.measurements[measurement.candidate.key] = measurement
        self.save()

    @property
    def cpu_seconds(self) -> float:
        """CPU time of everything cached: scored candidates (timing included) and candidates only timed."""
        return sum(m.cpu_seconds for m in self.measurements.values()) + sum(
            s for k, (_, s) in self.latencies.items() if k not in self.measurements)
