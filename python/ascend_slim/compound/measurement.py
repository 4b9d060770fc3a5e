"""What a scored candidate measured, and the run folder's cache of it (JSON, written atomically)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AscendSlimError
from ..evaluation.bootstrap import DifferenceInterval, MatchTable
from ..fileio import atomic_write_text
from .candidates import Candidate

CACHE_VERSION = 1
SETTINGS_FILE = "settings.json"  # beside a folder's cached files: the settings they were all made under


def settings_key(context: Mapping[str, Any]) -> str:
    """A short hash of ``context`` (JSON, keys sorted): the key every cached file of one search is tied to."""
    return hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:16]


def _differing(stored: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    return ", ".join(sorted(k for k in set(stored) | set(context) if stored.get(k) != context.get(k)))


def tie_folder(folder: str | Path, context: Mapping[str, Any]) -> str:
    """Tie every file in ``folder`` (a plan's cache: measurements, the original's match records, candidate
    models) to ``context``: the first use records it in ``folder/settings.json``; a folder made under other
    settings, or holding files without that record, is refused as a whole (deleting one file of it would leave
    the others to be reused for the wrong model). Returns the settings key."""
    folder = Path(folder)
    context = json.loads(json.dumps(dict(context)))
    key, path = settings_key(context), folder / SETTINGS_FILE
    fresh = f"delete the whole folder {folder} to plan afresh, or use a new run folder"
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            stored_key, stored_context = stored["key"], stored["context"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AscendSlimError(f"{path} is damaged ({type(exc).__name__}): {fresh}") from None
        if stored_key != key:
            differ = _differing(stored_context, context) if isinstance(stored_context, dict) else "all"
            raise AscendSlimError(f"{folder} was made for other settings ({differ} differ): {fresh}")
    elif folder.is_dir() and any(folder.iterdir()):
        raise AscendSlimError(f"{folder} holds files but no record of the settings they were made for "
                              f"({SETTINGS_FILE} missing): {fresh}")
    else:
        atomic_write_text(path, json.dumps({"key": key, "context": context}, indent=1) + "\n")
    return key
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
        self.key = settings_key(self.context)
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
            raise AscendSlimError(f"search cache {self.path} is unreadable ({type(exc).__name__}: {exc}): delete "
                                  f"the whole folder {self.path.parent} to search afresh") from None
        if stored != self.context:
            raise AscendSlimError(f"search cache {self.path} was written for other settings "
                                  f"({_differing(stored, self.context)} differ): delete the whole folder "
                                  f"{self.path.parent} (its measurements and models alike) or use a new run folder")
        self.measurements, self.latencies = measurements, latencies

    def save(self) -> None:
        data = {"version": CACHE_VERSION, "context": self.context,
                "latencies": {k: {"ratio": r, "cpu_seconds": s} for k, (r, s) in self.latencies.items()},
                "measurements": {k: m.to_dict() for k, m in self.measurements.items()}}
        atomic_write_text(self.path, json.dumps(data) + "\n")

    @property
    def reference_path(self) -> Path:
        """Where the original's per-image match records are kept (a resumed search bootstraps against them),
        named with the settings key: records made under other settings are never read."""
        return self.path.with_name(f"{self.path.stem}.original.{self.key}.npz")

    def load_reference(self) -> MatchTable | None:
        """The original's cached match records; None when not cached yet."""
        path = self.reference_path
        if not path.exists():
            return None
        try:
            return MatchTable.load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise AscendSlimError(f"cached match records {path} are damaged ({type(exc).__name__}): delete the whole "
                                  f"folder {self.path.parent} to search afresh") from None

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
