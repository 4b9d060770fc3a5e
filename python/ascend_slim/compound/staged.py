"""The staged compound search: sizes, then channel cuts near the frontier, then INT8 on the finalists.

Measuring is injected: ``score(candidate)`` runs the candidate on the labelled selection split and returns its
per-image match records (:class:`~ascend_slim.evaluation.bootstrap.MatchTable`; building the candidate's model —
pruning, reconstruction, quantisation — is the caller's business), ``latency(candidate)`` returns its latency
as a ratio to the original at its default size. ``latency`` must be cheap next to ``score``: it may build the
candidate's graph but needs no reconstruction or calibration (shapes alone decide latency), because the search
times a derived candidate before deciding whether it is worth scoring.

Stages (``slack`` is a mAP margin, 0.005 = half a point by default):

1. ``size``: every size, uncut, FP32 (no training: seconds each). The original is scored first.
2. ``cut``: every cut level at the sizes *near the frontier* of stage 1 — a size is near when no stage-1 point
   is at least as fast and more than ``slack`` more accurate (:func:`~.objective.near_frontier`).
3. ``int8``: INT8 of the *finalists*, the FP32 points (stages 1–2) near the frontier by the same rule.

With an objective, a derived candidate (a cut of its uncut size, INT8 of its FP32 model: its *parent*) is
scored only when it could change the choice, assuming that deriving never raises accuracy (a heuristic that
decides only what to score; the choice uses measured numbers): under ``target_latency`` its latency must be
within the budget and its parent's mAP above the best feasible mAP so far less ``slack`` (and a cut is not scored
when its parent meets the objective itself: the parent is already the better choice); under ``max_drop``
its parent must keep the accuracy floor, no lighter cut at its size and precision may have missed it, and
(without a latency target) it must be faster than the fastest feasible candidate so far. Skipped candidates
are listed with the reason. Within a stage candidates go in the order most likely to tighten these bounds
early: parent mAP descending under a latency target; under ``max_drop`` alone parent latency ascending,
lighter cuts first.

Every latency and measurement goes to the :class:`~.measurement.MeasurementCache` as soon as it exists, and
the original's match records and every candidate's resampled differences beside it, so a resumed search calls
``score``/``latency`` for nothing it has.

After the choice: ``retime(candidates)`` (optional) re-times the finalists (:func:`~.objective.finalists`: the
chosen candidate and its floor-keeping frontier neighbours within 10 % of the deciding latency) side by side with
more rounds; their re-timed medians replace the search's latencies, the choice is made again on them, and a
choice whose latency interval straddles the budget is flagged. The chosen one's selection estimate is then
corrected for the winner's curse (:func:`~.objective.selection_optimism`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..evaluation.bootstrap import MatchTable, PairedBootstrap
from ..fileio import atomic_output
from ..profiling import cpu_seconds
from .candidates import Candidate, SearchSpace
from .measurement import Measurement, MeasurementCache
from .objective import LatencyInterval, Objective, PlanResult, choose, finalists, near_frontier, selection_optimism

ScoreFn = Callable[[Candidate], MatchTable]
LatencyFn = Callable[[Candidate], float]
RetimeFn = Callable[[Sequence[Candidate]], Mapping[Candidate, LatencyInterval]]
DEFAULT_SLACK = 0.005


@dataclass(frozen=True)
class SearchResult:
    """Everything scored (this run and earlier ones), the choice, and what the search cost."""

    space: SearchSpace
    objective: Objective
    measurements: tuple[Measurement, ...]  # stage order
    original: Measurement
    plan: PlanResult
    skipped: tuple[tuple[Candidate, str], ...]  # derived candidates timed but not scored, and why
    scored_now: int  # score() calls in this run (0 for a complete resumed search)
    timed_now: int  # latency() calls in this run
    cpu_seconds: float  # the whole search's CPU time, earlier runs included
    data_use: Mapping[str, Any] | None = None  # which images fitted and which scored (the caller's account)

    def to_dict(self) -> dict:
        return {"space": self.space.to_dict(), "objective": self.objective.to_dict(), "plan": self.plan.to_dict(),
                "original": self.original.candidate.key, "scored": len(self.measurements),
                "scored_now": self.scored_now, "timed_now": self.timed_now, "cpu_seconds": self.cpu_seconds,
                "skipped": [{"candidate": c.key, "reason": r} for c, r in self.skipped],
                "data_use": dict(self.data_use or {})}


class _Search:
    def __init__(self, space: SearchSpace, objective: Objective, score: ScoreFn, latency: LatencyFn,
                 cache: MeasurementCache, latency_estimated: bool, slack: float, resamples: int, seed: int,
                 progress: bool) -> None:
        self.space, self.objective, self.cache = space, objective, cache
        self._score, self._latency = score, latency
        self.latency_estimated, self.slack = latency_estimated, slack
        self.resamples, self.seed, self.progress = resamples, seed, progress
        self.measured: dict[Candidate, Measurement] = {}
        self.skipped: list[tuple[Candidate, str]] = []
        self.scored_now = self.timed_now = 0
        self._bootstrap: PairedBootstrap | None = None
        self.differences = self._load_differences()

    @property
    def differences_path(self) -> Path:
        """Every scored candidate's resampled differences, for the winner's-curse correction of a resumed plan."""
        return self.cache.path.with_name(self.cache.path.stem + ".resampled.npz")

    def _load_differences(self) -> dict[Candidate, np.ndarray]:
        known = {c.key: c for c in (m.candidate for m in self.cache.measurements.values())}
        if not self.differences_path.is_file():
            return {}
        with np.load(self.differences_path, allow_pickle=False) as z:
            return {known[k]: z[k] for k in z.files if k in known and z[k].shape == (self.resamples,)}

    def _save_differences(self) -> None:
        with atomic_output(self.differences_path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{c.key: d for c, d in self.differences.items()})

    def latency(self, candidate: Candidate) -> float:
        if candidate.key not in self.cache.latencies:
            start = cpu_seconds()
            ratio = float(self._latency(candidate))
            if not (math.isfinite(ratio) and ratio > 0):
                raise ValueError(f"latency({candidate.key}) returned {ratio}, not a positive ratio")
            self.timed_now += 1
            self.cache.add_latency(candidate, ratio, cpu_seconds() - start)
        return self.cache.latencies[candidate.key][0]

    def _table(self, candidate: Candidate) -> MatchTable:
        table = self._score(candidate)
        if not isinstance(table, MatchTable):
            raise TypeError(f"score({candidate.key}) returned {type(table).__name__}, not a MatchTable")
        self.scored_now += 1
        return table

    def bootstrap(self) -> PairedBootstrap:
        if self._bootstrap is None:
            path = self.cache.reference_path
            if path.exists():
                reference = MatchTable.load(path)
            else:
                reference = self._table(self.space.original)
                reference.save(path)
            self.objective.check_images(reference.num_images)
            self._bootstrap = PairedBootstrap(reference, self.resamples, self.seed)
        return self._bootstrap

    def measure(self, candidate: Candidate, stage: str) -> Measurement:
        cached = self.cache.measurements.get(candidate.key)
        if cached is None:
            ratio = self.latency(candidate)
            start = cpu_seconds()
            bootstrap = self.bootstrap()
            table = bootstrap.reference if candidate == self.space.original else self._table(candidate)
            self.differences[candidate] = bootstrap.differences(table)
            delta = bootstrap.compare(table, self.differences[candidate])
            cpu = cpu_seconds() - start + self.cache.latencies[candidate.key][1]
            cached = Measurement(candidate, ratio, self.latency_estimated, table.map50(), delta, cpu, stage)
            self._save_differences()
            self.cache.add(cached)
        self.measured[candidate] = cached
        return cached

    def skip_reason(self, candidate: Candidate) -> str | None:
        """Why scoring ``candidate`` cannot change the choice (None: score it); see the module docstring."""
        objective = self.objective
        if not objective.given:
            return None
        parent = self.measured[candidate.parent]
        ratio = self.latency(candidate)
        feasible = [m for m in self.measured.values() if objective.feasible(m)]
        if objective.target_latency is not None:
            if ratio > objective.target_latency:
                return f"latency {ratio:.3f} above the target {objective.target_latency:g}"
            best = max((m.map50 for m in feasible), default=-math.inf)
            if parent.map50 <= best - self.slack:
                return (f"{parent.candidate.key} (mAP {parent.map50:.4f}) is not above the best feasible mAP "
                        f"{best:.4f} less the slack")
            if candidate.cut != parent.candidate.cut and objective.feasible(parent):
                return f"{parent.candidate.key} meets the objective itself, and a cut is never more accurate"
        if objective.max_drop is not None:
            if not objective.meets_floor(parent):
                return f"{parent.candidate.key} already misses the accuracy floor"
            lighter = [m for m in self.measured.values() if m.candidate.img_size == candidate.img_size
                       and m.candidate.precision == candidate.precision and 0 < m.candidate.cut < candidate.cut
                       and not objective.meets_floor(m)]
            if lighter:
                return f"the lighter cut {lighter[0].candidate.key} already misses the accuracy floor"
            if objective.target_latency is None:
                fastest = min((m.latency for m in feasible), default=math.inf)
                if ratio >= fastest:
                    return f"latency {ratio:.3f} not below the fastest feasible {fastest:.3f}"
        return None

    def derived_stage(self, stage: str, candidates: list[Candidate]) -> None:
        if self.objective.target_latency is not None:
            candidates.sort(key=lambda c: (-self.measured[c.parent].map50, c))
        elif self.objective.max_drop is not None:  # by size, lighter cuts first (a heavier one is never better)
            candidates.sort(key=lambda c: (self.latency(c.parent), c.cut, self.latency(c), c))
        for candidate in tqdm(candidates, desc=f"search: {stage}", unit="cand", disable=not self.progress):
            reason = None if candidate.key in self.cache.measurements else self.skip_reason(candidate)
            if reason is None:
                self.measure(candidate, stage)
            else:
                self.skipped.append((candidate, reason))

    def finish(self, retime: RetimeFn | None) -> tuple[tuple[Measurement, ...], PlanResult]:
        """The choice, made again on the finalists' re-timed latencies, with its flags and corrected estimate."""
        measurements = tuple(self.measured.values())
        original = self.space.original
        plan = choose(measurements, self.objective, original)
        retimed: dict[Candidate, LatencyInterval] = {}
        if retime is not None and plan.chosen is not None:
            retimed = dict(retime(finalists(plan, measurements)))
            measurements = tuple(replace(m, latency=retimed[m.candidate].ratio) if m.candidate in retimed else m
                                 for m in measurements)
            plan = choose(measurements, self.objective, original)
        flag = ""
        budget = self.objective.target_latency
        if plan.chosen is not None and plan.chosen.candidate in retimed and retimed[plan.chosen.candidate].straddles(
                budget):
            interval = retimed[plan.chosen.candidate]
            flag = (f"latency interval [{interval.low:.3f}, {interval.high:.3f}] of the choice straddles the budget "
                    f"{budget:g}: it may miss it on another measurement")
        estimate = selection_optimism(measurements, self.differences, self.objective, plan.chosen) \
            if plan.chosen is not None else None
        return measurements, replace(plan, retimed=retimed or None, latency_flag=flag, estimate=estimate)

    def run(self, retime: RetimeFn | None = None, data_use: Mapping[str, Any] | None = None) -> SearchResult:
        space = self.space
        sizes = [space.original] + [Candidate(s) for s in space.sizes if s != space.default_size]
        for candidate in tqdm(sizes, desc="search: size", unit="cand", disable=not self.progress):
            self.measure(candidate, "size")
        if space.cuts:
            base = near_frontier(list(self.measured.values()), self.slack)
            self.derived_stage("cut", [Candidate(m.candidate.img_size, cut) for m in base for cut in space.cuts])
        if space.int8:
            base = near_frontier(list(self.measured.values()), self.slack)  # all FP32 so far
            self.derived_stage("int8", [Candidate(m.candidate.img_size, m.candidate.cut, "int8") for m in base])
        measurements, plan = self.finish(retime)
        original = next(m for m in measurements if m.candidate == space.original)
        return SearchResult(space, self.objective, measurements, original, plan, tuple(self.skipped),
                            self.scored_now, self.timed_now, self.cache.cpu_seconds, data_use)


def search(space: SearchSpace, objective: Objective, score: ScoreFn, latency: LatencyFn, cache_path: str | Path,
           context: Mapping[str, Any], *, latency_estimated: bool = False, slack: float = DEFAULT_SLACK,
           resamples: int = 1000, seed: int = 0, progress: bool = True, retime: RetimeFn | None = None,
           data_use: Mapping[str, Any] | None = None) -> SearchResult:
    """Run (or resume) the staged search over ``space`` for ``objective``; see the module docstring.

    ``cache_path`` is the JSON cache in the run folder (the original's match records go beside it).
    ``context`` names everything the numbers depend on besides the candidate (model file and hash, selection
    split and its images, detector settings, what each cut level means and how it is recovered, INT8 calibration,
    latency model); ``latency_estimated``, ``resamples`` and ``seed`` are added to it. A cache written under
    another context is refused (:class:`~.measurement.MeasurementCache`). The objective and ``slack`` are not
    part of it: a search for another objective reuses every measurement. ``retime`` re-times the finalists
    (see the module docstring); ``data_use`` (which images fitted and which scored) is carried into the report.
    """
    if slack < 0:
        raise ValueError(f"slack must be non-negative, got {slack}")
    cache = MeasurementCache(cache_path, {**context, "latency_estimated": latency_estimated,
                                          "bootstrap": {"resamples": resamples, "seed": seed}})
    return _Search(space, objective, score, latency, cache, latency_estimated, slack, resamples, seed,
                   progress).run(retime, data_use)
