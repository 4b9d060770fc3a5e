"""Objectives over measured candidates, the Pareto frontier, and the choice (with what came closest).

Latency is a ratio to the original at its default size (lower is faster); accuracy is the selection mAP@0.5.

- ``target_latency r``: the best selection mAP among candidates with latency <= r (ties: the faster).
- ``max_drop p`` (mAP points): the fastest candidate whose accuracy floor holds at the stated confidence
  (ties: the more accurate). The floor holds when the one-sided lower bound of the paired bootstrap of
  (candidate − original) mAP at ``confidence`` (default 90 %: the bias-corrected 10th percentile of the
  resampled differences, :meth:`~ascend_slim.evaluation.bootstrap.DifferenceInterval.lower_bound`) is at least
  −p/100. The original always holds it (its difference is 0 in every resample).
- both: both constraints, then the best selection mAP among the candidates meeting them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import AscendSlimError
from .candidates import Candidate
from .measurement import Measurement


@dataclass(frozen=True)
class Objective:
    """What the search optimises; neither field set means the frontier only (a plan for choosing a budget)."""

    target_latency: float | None = None  # latency ratio budget: 0.33 = at least ~3x faster than the original
    max_drop: float | None = None  # mAP@0.5 points (1.0 = 0.01 mAP) the candidate may lose
    confidence: float = 0.9  # of the one-sided bound the accuracy floor uses

    def __post_init__(self) -> None:
        if self.target_latency is not None and not self.target_latency > 0.0:
            raise AscendSlimError(f"target latency {self.target_latency} must be a positive ratio to the original "
                                  "(0.33 = 3x faster)")
        if self.max_drop is not None and not 0.0 <= self.max_drop <= 100.0:
            raise AscendSlimError(f"max drop {self.max_drop} must be mAP points in [0, 100]")
        if not 0.5 <= self.confidence < 1.0:
            raise AscendSlimError(f"confidence {self.confidence} must lie in [0.5, 1)")

    @property
    def given(self) -> bool:
        return self.target_latency is not None or self.max_drop is not None

    def within_budget(self, m: Measurement) -> bool:
        return self.target_latency is None or m.latency <= self.target_latency

    def floor_bound(self, m: Measurement) -> float:
        """The one-sided lower bound of ``m``'s mAP difference to the original at :attr:`confidence`."""
        return m.delta.lower_bound(self.confidence)

    def meets_floor(self, m: Measurement) -> bool:
        return self.max_drop is None or self.floor_bound(m) >= -self.max_drop / 100.0

    def feasible(self, m: Measurement) -> bool:
        return self.within_budget(m) and self.meets_floor(m)

    def describe(self) -> str:
        parts = []
        if self.target_latency is not None:
            parts.append(f"latency <= {self.target_latency:g} of the original ({1 / self.target_latency:.2f}x)")
        if self.max_drop is not None:
            parts.append(f"selection mAP@0.5 within {self.max_drop:g} mAP points of the original at "
                         f"{self.confidence:.0%} one-sided confidence")
        return " and ".join(parts) or "none (frontier only)"

    def to_dict(self) -> dict:
        return {"target_latency": self.target_latency, "max_drop_points": self.max_drop,
                "confidence": self.confidence, "description": self.describe()}


def _by_speed(m: Measurement) -> tuple:
    return m.latency, -m.map50, m.candidate


def pareto_frontier(measurements: Iterable[Measurement]) -> tuple[Measurement, ...]:
    """The non-dominated measurements (no other is at least as fast and at least as accurate, one strictly),
    fastest first; of exact ties in both, the first by candidate order."""
    frontier: list[Measurement] = []
    for m in sorted(measurements, key=_by_speed):
        if not frontier or m.map50 > frontier[-1].map50:
            frontier.append(m)
    return tuple(frontier)


def near_frontier(measurements: Iterable[Measurement], slack: float) -> tuple[Measurement, ...]:
    """The measurements within ``slack`` mAP of the frontier: no measurement is at least as fast and more than
    ``slack`` more accurate (``slack=0``: the frontier and its exact ties). Fastest first."""
    ordered = sorted(measurements, key=_by_speed)
    return tuple(m for m in ordered if all(o.map50 <= m.map50 + slack for o in ordered if o.latency <= m.latency))


def _name(m: Measurement) -> str:
    c = m.candidate
    cut = f", cut {c.cut:.3g}" if c.cut else ""
    estimate = "estimate, " if m.latency_estimated else ""
    return (f"{c.img_size} px{cut}, {c.precision}: latency {m.latency:.3f} ({estimate}{m.speedup:.2f}x), "
            f"selection mAP@0.5 {m.map50:.4f}")


def _delta_text(m: Measurement, objective: Objective) -> str:
    return (f"difference {100 * m.delta.difference:+.2f} points, {objective.confidence:.0%} lower bound "
            f"{100 * objective.floor_bound(m):+.2f}")


@dataclass(frozen=True)
class PlanResult:
    """The choice: ``met`` is None without an objective, else whether ``chosen`` meets it; when nothing does,
    ``chosen`` is None and ``closest`` names what came nearest. ``message`` says it in one plain sentence."""

    objective: Objective
    chosen: Measurement | None
    met: bool | None
    closest: tuple[Measurement, ...]
    message: str
    frontier: tuple[Measurement, ...]

    def to_dict(self) -> dict:
        return {"objective": self.objective.to_dict(), "met": self.met, "message": self.message,
                "chosen": self.chosen.candidate.key if self.chosen else None,
                "closest": [m.candidate.key for m in self.closest],
                "frontier": [m.candidate.key for m in self.frontier]}


def choose(measurements: Sequence[Measurement], objective: Objective, original: Candidate) -> PlanResult:
    """Pick the candidate ``objective`` asks for among ``measurements`` (which include ``original``)."""
    if not measurements:
        raise ValueError("no measurement to choose from")
    frontier = pareto_frontier(measurements)
    if not objective.given:
        return PlanResult(objective, None, None, (), f"no objective given: {len(frontier)} frontier points of "
                          f"{len(measurements)} scored candidates", frontier)
    feasible = [m for m in measurements if objective.feasible(m)]
    if feasible:
        if objective.target_latency is not None:
            chosen = min(feasible, key=lambda m: (-m.map50, m.latency, m.candidate))
        else:
            chosen = min(feasible, key=_by_speed)
        message = f"chosen {_name(chosen)}, {_delta_text(chosen, objective)}"
        if chosen.candidate == original and objective.target_latency is None:
            message = f"no candidate faster than the original meets {objective.describe()}; the original is kept"
        elif chosen.candidate == original:
            message = f"the original is kept: no candidate within the latency budget is more accurate ({message})"
        return PlanResult(objective, chosen, True, (), message, frontier)

    in_budget = [m for m in measurements if objective.within_budget(m)]
    above_floor = [m for m in measurements if objective.meets_floor(m)]
    closest: list[Measurement] = []
    parts = []
    if above_floor and objective.target_latency is not None:
        fastest = min(above_floor, key=_by_speed)
        closest.append(fastest)
        what = "the fastest that keeps the accuracy floor" if objective.max_drop is not None else "the fastest"
        parts.append(f"{what} is {_name(fastest)}")
    if in_budget and objective.max_drop is not None:
        safest = max(in_budget, key=lambda m: (objective.floor_bound(m), -m.latency))
        closest.append(safest)
        parts.append(f"the most accurate within the latency budget is {_name(safest)}, "
                     f"{_delta_text(safest, objective)}")
    message = f"no scored candidate meets {objective.describe()}"
    if parts:
        message += "; " + "; ".join(parts)
    return PlanResult(objective, None, False, tuple(closest), message, frontier)
