"""Objectives over measured candidates, the Pareto frontier, the choice (with what came closest), and what the
choice honestly promises.

Latency is a ratio to the original at its default size (lower is faster); accuracy is the selection mAP@0.5,
every candidate scored on images that did not fit it (cross-fitting, :mod:`ascend_slim.recipes.slim_plan`).

- ``max_drop p`` (mAP points): the fastest candidate whose accuracy floor holds (ties: the more accurate). At the
  default ``confidence`` 0.5 the floor is a point estimate: the (candidate − original) selection mAP difference
  is at least −p/100. At a ``confidence`` above 0.5 it is the one-sided lower bound of the paired bootstrap at
  that level (bias-corrected percentile, :meth:`~ascend_slim.evaluation.bootstrap.DifferenceInterval.lower_bound`),
  per candidate, not simultaneous over the candidates. The original always holds it (difference 0). Intervals
  from fewer than :data:`~ascend_slim.evaluation.bootstrap.MIN_RELIABLE_IMAGES` images are refused.
- ``target_latency r``: the best selection mAP among candidates with latency <= r (ties: the faster).
- both: both constraints, then the best selection mAP among the candidates meeting them.

The chosen candidate's selection estimate is optimistic (it won against noisy rivals: the winner's curse);
:func:`selection_optimism` estimates by how much, by replaying the choice in every bootstrap resample.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import AscendSlimError
from ..evaluation.bootstrap import MIN_RELIABLE_IMAGES
from .candidates import Candidate
from .measurement import Measurement


@dataclass(frozen=True)
class Objective:
    """What the search optimises; neither field set means the frontier only (a plan for choosing a budget)."""

    target_latency: float | None = None  # latency ratio budget: 0.33 = at least ~3x faster than the original
    max_drop: float | None = None  # mAP@0.5 points (1.0 = 0.01 mAP) the candidate may lose
    confidence: float = 0.5  # of the one-sided bound the accuracy floor uses (0.5: the point estimate)

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
        """What the floor is held against: ``m``'s selection mAP difference to the original (at confidence 0.5)
        or its one-sided bootstrap lower bound at :attr:`confidence`."""
        return m.delta.difference if self.confidence == 0.5 else m.delta.lower_bound(self.confidence)

    def check_images(self, images: int) -> None:
        """Refuse an accuracy floor decided on fewer than :data:`MIN_RELIABLE_IMAGES` selection images."""
        if self.max_drop is not None and images < MIN_RELIABLE_IMAGES:
            raise AscendSlimError(f"the selection split has {images} images: an accuracy floor (--max-drop) needs at "
                                  f"least {MIN_RELIABLE_IMAGES} to trust its interval; select on more images or "
                                  "give --max-drop none with a --target-latency")

    def meets_floor(self, m: Measurement) -> bool:
        return self.max_drop is None or self.floor_bound(m) >= -self.max_drop / 100.0

    def feasible(self, m: Measurement) -> bool:
        return self.within_budget(m) and self.meets_floor(m)

    def describe(self) -> str:
        parts = []
        if self.target_latency is not None:
            parts.append(f"latency <= {self.target_latency:g} of the original ({1 / self.target_latency:.2f}x)")
        if self.max_drop is not None:
            how = "estimate" if self.confidence == 0.5 else f"{self.confidence:.0%} one-sided lower bound"
            parts.append(f"selection mAP@0.5 within {self.max_drop:g} mAP points of the original ({how})")
        return " and ".join(parts) or "none (frontier only)"

    def to_dict(self) -> dict:
        return {"target_latency": self.target_latency, "max_drop_points": self.max_drop,
                "confidence": self.confidence, "description": self.describe()}


INTERVAL_LEVEL = 0.9  # of the two-sided intervals reported beside every estimate


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
    low, high = m.delta.interval(INTERVAL_LEVEL)
    text = (f"estimated change {100 * m.delta.difference:+.2f} mAP points ({INTERVAL_LEVEL:.0%} interval "
            f"[{100 * low:+.2f}, {100 * high:+.2f}]")
    if objective.confidence != 0.5:
        text += f", {objective.confidence:.0%} lower bound {100 * objective.floor_bound(m):+.2f}"
    return text + ("" if m.delta.reliable else ", unreliable: fewer than "
                   f"{MIN_RELIABLE_IMAGES} images") + ")"


@dataclass(frozen=True)
class LatencyInterval:
    """A finalist re-timed side by side with the original: the median latency ratio over ``runs`` rounds and
    the :data:`INTERVAL_LEVEL` interval of that median (bootstrap over rounds)."""

    ratio: float
    low: float
    high: float
    runs: int

    def straddles(self, budget: float | None) -> bool:
        return budget is not None and self.low <= budget < self.high

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "interval": [self.low, self.high], "runs": self.runs}


@dataclass(frozen=True)
class SelectionEstimate:
    """The chosen candidate's selection estimate corrected for the winner's curse: ``optimism`` is the mean, over
    bootstrap resamples, of (the resample's own choice's resampled difference − that candidate's mean resampled
    difference); ``corrected`` = estimate − optimism, its interval the bootstrap interval shifted alike."""

    difference: float
    optimism: float
    interval: tuple[float, float]  # INTERVAL_LEVEL, shifted by the optimism
    switched: float  # fraction of resamples whose choice differs from the chosen candidate

    @property
    def corrected(self) -> float:
        return self.difference - self.optimism

    def to_dict(self) -> dict:
        return {"difference": self.difference, "optimism": self.optimism, "corrected": self.corrected,
                "interval": list(self.interval), "switched": self.switched, "level": INTERVAL_LEVEL}


@dataclass(frozen=True)
class PlanResult:
    """The choice: ``met`` is None without an objective, else whether ``chosen`` meets it; when nothing does,
    ``chosen`` is None and ``closest`` names what came nearest. ``message`` says it in one plain sentence.
    The search adds the finalists' re-timed latencies (``retimed``), a ``latency_flag`` when the chosen one's
    latency interval straddles the budget, and the winner's-curse ``estimate`` of the chosen one."""

    objective: Objective
    chosen: Measurement | None
    met: bool | None
    closest: tuple[Measurement, ...]
    message: str
    frontier: tuple[Measurement, ...]
    retimed: Mapping[Candidate, LatencyInterval] | None = None
    latency_flag: str = ""
    estimate: SelectionEstimate | None = None

    def to_dict(self) -> dict:
        chosen = self.chosen.candidate if self.chosen else None
        retimed = self.retimed or {}
        return {"objective": self.objective.to_dict(), "met": self.met, "message": self.message,
                "chosen": chosen.key if chosen else None,
                "closest": [_closest_row(m) for m in self.closest],
                "frontier": [m.candidate.key for m in self.frontier],
                "retimed": {c.key: v.to_dict() for c, v in retimed.items()},
                "chosen_latency": retimed[chosen].to_dict() if chosen in retimed else None,
                "latency_flag": self.latency_flag,
                "selection_estimate": self.estimate.to_dict() if self.estimate else None}


def _closest_row(m: Measurement) -> dict:
    low, high = m.delta.interval(INTERVAL_LEVEL)
    return {"key": m.candidate.key, "latency": m.latency, "difference": m.delta.difference,
            "interval": [low, high], "reliable": m.delta.reliable}


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
        parts.append(f"{what} is {_name(fastest)}, {_delta_text(fastest, objective)}")
    if in_budget and objective.max_drop is not None:
        safest = max(in_budget, key=lambda m: (objective.floor_bound(m), -m.latency))
        closest.append(safest)
        parts.append(f"the most accurate within the latency budget is {_name(safest)}, "
                     f"{_delta_text(safest, objective)}")
    message = f"no scored candidate meets {objective.describe()}"
    if parts:
        message += "; " + "; ".join(parts)
    return PlanResult(objective, None, False, tuple(closest), message, frontier)


def finalists(plan: PlanResult, measurements: Sequence[Measurement], spread: float = 0.1,
              most: int = 4) -> tuple[Candidate, ...]:
    """What to re-time side by side: the chosen candidate and the candidates that keep the accuracy floor, are on
    its frontier and lie within ``spread`` (relative) of the latency that decides — the budget, or without one the
    chosen latency; at most ``most``, the closest to it first. Empty without a choice."""
    if plan.chosen is None:
        return ()
    objective = plan.objective
    pivot = objective.target_latency if objective.target_latency is not None else plan.chosen.latency
    near = [m for m in pareto_frontier(m for m in measurements if objective.meets_floor(m))
            if abs(m.latency - pivot) <= spread * pivot and m.candidate != plan.chosen.candidate]
    near.sort(key=lambda m: (abs(m.latency - pivot), m.candidate))
    return (plan.chosen.candidate, *[m.candidate for m in near[:most - 1]])


def selection_optimism(measurements: Sequence[Measurement], differences: Mapping[Candidate, np.ndarray],
                       objective: Objective, chosen: Measurement) -> SelectionEstimate | None:
    """How optimistic ``chosen``'s selection estimate is for having won (see :class:`SelectionEstimate`).

    Every resample replays :func:`choose`'s rule on the candidates' resampled differences (a bound at another
    confidence keeps its offset from the estimate, latencies stay fixed) among ``measurements`` whose resampled
    differences are known (all of them, or None is returned). The replay sees the scored candidates only, not
    the search's decisions about what to score, so it may under-correct when many were skipped."""
    if any(m.candidate not in differences for m in measurements) or not objective.given:
        return None
    diffs = np.stack([differences[m.candidate] for m in measurements])  # (candidates, resamples)
    centred = diffs - diffs.mean(axis=1, keepdims=True)
    offsets = np.array([[m.delta.difference - objective.floor_bound(m)] for m in measurements])
    latency = np.array([m.latency for m in measurements])
    feasible = np.array([[objective.within_budget(m)] for m in measurements]) & (
        objective.max_drop is None or diffs - offsets >= -objective.max_drop / 100.0)
    if objective.target_latency is not None:  # best mAP among the feasible (the original's resampled mAP cancels)
        score = np.where(feasible, diffs, -np.inf)
    else:  # the fastest feasible, ties to the more accurate
        score = np.where(feasible, -latency[:, None] + 1e-9 * diffs, -np.inf)
    picks = np.argmax(score, axis=0)
    has_pick = np.isfinite(score.max(axis=0))
    index = [m.candidate for m in measurements].index(chosen.candidate)
    optimism = float(np.mean(np.where(has_pick, centred[picks, np.arange(diffs.shape[1])], 0.0)))
    low, high = chosen.delta.interval(INTERVAL_LEVEL)
    return SelectionEstimate(chosen.delta.difference, optimism, (low - optimism, high - optimism),
                             float(np.mean(picks[has_pick] != index)) if has_pick.any() else 0.0)
