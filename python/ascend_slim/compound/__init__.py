"""Compound slimming plan: search input size × channel cut × precision by measurement, under a latency budget
and an accuracy floor, with the Pareto frontier of what was scored (pure logic: models are measured through
injected functions)."""

from .candidates import Candidate, SearchSpace, default_sizes
from .measurement import Measurement, MeasurementCache
from .objective import Objective, PlanResult, choose, near_frontier, pareto_frontier
from .staged import SearchResult, search

__all__ = ["Candidate", "Measurement", "MeasurementCache", "Objective", "PlanResult", "SearchResult",
           "SearchSpace", "choose", "default_sizes", "near_frontier", "pareto_frontier", "search"]
