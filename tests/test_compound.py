"""Compound planner: frontier and choice on a stub latency/accuracy world, staged search (which candidates are
scored), resume from the cache, and the Pareto report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ascend_slim.compound import (
    Candidate,
    MeasurementCache,
    Objective,
    SearchSpace,
    choose,
    default_sizes,
    near_frontier,
    pareto_frontier,
    search,
)
from ascend_slim.compound.measurement import Measurement
from ascend_slim.compound.report import write_report
from ascend_slim.errors import AscendSlimError
from ascend_slim.evaluation.bootstrap import DifferenceInterval, MatchTable

# The stub world: uncut FP32 mAP per size, latency (size / 640)^2; a cut c multiplies latency by 1 - c and costs
# CUT_COST[c]; INT8 multiplies latency by 0.7 and costs 0.8 points.
SIZE_MAP = {256: 0.64, 320: 0.70, 384: 0.74, 448: 0.75, 512: 0.76, 640: 0.72}
CUT_COST = {0.0: 0.0, 0.1: 0.01, 0.3: 0.06}
INT8_COST = 0.008
SPACE = SearchSpace(sizes=(256, 320, 384, 448, 512), cuts=(0.1, 0.3), precisions=("fp32", "int8"), default_size=640)
NUM_IMAGES = 1000
FP_ORDER = np.random.default_rng(1).permutation(NUM_IMAGES)  # nested FP sets: paired differences stay tight


def stub_map(c: Candidate) -> float:
    return SIZE_MAP[c.img_size] - CUT_COST[c.cut] - (INT8_COST if c.precision == "int8" else 0.0)


def stub_latency(c: Candidate) -> float:
    return (c.img_size / 640) ** 2 * (1 - c.cut) * (0.7 if c.precision == "int8" else 1.0)


def stub_table(target_map: float) -> MatchTable:
    """One object per image, every one found, ``k`` false positives ranked first: VOC07 AP = N / (N + k)."""
    k = round(NUM_IMAGES / target_map - NUM_IMAGES)
    images = np.concatenate([FP_ORDER[:k], np.arange(NUM_IMAGES)])
    tp = np.concatenate([np.zeros(k, dtype=bool), np.ones(NUM_IMAGES, dtype=bool)])
    return MatchTable([f"im{i}" for i in range(NUM_IMAGES)], ["thing"], np.ones((NUM_IMAGES, 1)), [images], [tp])


class Stub:
    """Counting score and latency functions over the stub world."""

    def __init__(self) -> None:
        self.scored: list[str] = []
        self.timed: list[str] = []

    def score(self, c: Candidate) -> MatchTable:
        self.scored.append(c.key)
        return stub_table(stub_map(c))

    def latency(self, c: Candidate) -> float:
        self.timed.append(c.key)
        return stub_latency(c)


def run(tmp_path, objective: Objective, stub: Stub | None = None, name: str = "cache.json"):
    stub = stub or Stub()
    result = search(SPACE, objective, stub.score, stub.latency, tmp_path / name, {"model": "stub"}, resamples=200,
                    progress=False)
    return result, stub


def keys(measurements) -> list[str]:
    return [m.candidate.key for m in measurements]


def test_stub_table_has_the_map_it_was_built_for():
    assert stub_table(0.74).map50() == pytest.approx(0.74, abs=5e-4)


def test_candidate_keys_and_validation():
    assert Candidate(416, 0.1, "int8").key == "416-c0.1-int8"
    assert Candidate(np.int64(320)).key == "320-c0-fp32"
    assert Candidate(416, 0.1, "int8").parent == Candidate(416, 0.1)
    assert Candidate(416, 0.1).parent == Candidate(416)
    assert Candidate(416).parent is None
    for bad in [dict(img_size=300), dict(img_size=320, cut=1.0), dict(img_size=320, precision="fp16")]:
        with pytest.raises(AscendSlimError):
            Candidate(**bad)
    assert default_sizes() == tuple(range(256, 641, 32))
    assert SearchSpace(sizes=(320,), default_size=416).sizes == (320, 416)  # the original is always searched


def test_no_objective_scores_cuts_only_near_the_size_frontier_and_int8_on_the_finalists(tmp_path):
    result, stub = run(tmp_path, Objective())
    by_stage = {s: [m for m in result.measurements if m.stage == s] for s in ("size", "cut", "int8")}
    assert stub.scored[0] == "640-c0-fp32" and result.original.candidate == Candidate(640)
    # stage 1 frontier: every size but 640, which 512 beats (faster and 4 points better)
    assert keys(pareto_frontier(by_stage["size"])) == [f"{s}-c0-fp32" for s in (256, 320, 384, 448, 512)]
    assert sorted(keys(by_stage["cut"])) == sorted(f"{s}-c{c:g}-fp32" for s in (256, 320, 384, 448, 512)
                                                   for c in (0.1, 0.3))
    fp32 = [m for m in result.measurements if m.candidate.precision == "fp32"]
    finalists = {m.candidate for m in fp32  # the rule, written out: nothing as fast and > slack better
                 if not any(o.latency <= m.latency and o.map50 > m.map50 + 0.005 for o in fp32)}
    assert {m.candidate.parent for m in by_stage["int8"]} == finalists
    assert Candidate(384, 0.3) not in finalists and Candidate(640) not in finalists
    assert result.plan.met is None and result.plan.chosen is None
    assert result.scored_now == len(stub.scored) == len(result.measurements) == 6 + 10 + len(finalists)


def test_target_latency_optimum_and_the_calls_it_needs(tmp_path):
    result, stub = run(tmp_path, Objective(target_latency=0.33))
    # cuts: only 384 has a cut within 0.33 whose parent beats the best feasible size (320, 0.70)
    assert [k for k in stub.scored if "-c0-" not in k or k.endswith("int8")] == [
        "384-c0.1-fp32", "384-c0.3-fp32", "384-c0-int8", "384-c0.1-int8"]
    assert result.plan.met is True and result.plan.chosen.candidate == Candidate(384, 0.0, "int8")
    assert result.plan.chosen.map50 == pytest.approx(0.732, abs=5e-4)
    # 384 int8 after a 10 % cut (0.227, 0.722) is faster and better than 320 (0.25, 0.70)
    assert keys(result.plan.frontier) == ["256-c0-fp32", "384-c0.1-int8", "384-c0-int8", "384-c0-fp32",
                                          "448-c0-fp32", "512-c0-fp32"]
    reasons = dict((c.key, r) for c, r in result.skipped)
    assert "above the target" in reasons["448-c0.1-fp32"] and "best feasible" in reasons["320-c0.1-fp32"]


def test_a_cut_of_a_candidate_that_meets_the_objective_is_not_scored(tmp_path):
    result, stub = run(tmp_path, Objective(target_latency=0.36))  # 384 fits exactly: (384 / 640)^2 = 0.36
    reasons = {c.key: r for c, r in result.skipped}
    assert "meets the objective itself" in reasons["384-c0.1-fp32"] and "384-c0.1-fp32" not in stub.scored
    assert "384-c0-int8" in stub.scored  # INT8 may still score higher than its parent: it is measured
    assert result.plan.chosen.candidate == Candidate(448, 0.0, "int8")  # 0.343, 0.742: better than 384


def test_max_drop_picks_the_fastest_candidate_whose_floor_holds(tmp_path):
    result, stub = run(tmp_path, Objective(max_drop=1.0))
    assert result.plan.met is True and result.plan.chosen.candidate == Candidate(384, 0.1, "int8")
    objective = result.objective
    chosen = result.plan.chosen
    assert objective.floor_bound(chosen) >= -0.01
    # everything faster that was scored misses the floor; 320 (-2 points) fails at 90 %
    faster = [m for m in result.measurements if m.latency < chosen.latency]
    assert faster and not any(objective.meets_floor(m) for m in faster)
    assert set(stub.scored) - {f"{s}-c0-fp32" for s in SIZE_MAP} == {"384-c0.3-fp32", "384-c0.1-fp32",
                                                                       "384-c0.1-int8"}


def test_both_objectives_met_and_not_met(tmp_path):
    met, _ = run(tmp_path, Objective(target_latency=0.30, max_drop=1.0), name="a.json")
    assert met.plan.met is True and met.plan.chosen.candidate == Candidate(384, 0.0, "int8")
    missed, stub = run(tmp_path, Objective(target_latency=0.20, max_drop=1.0), name="b.json")
    assert missed.plan.met is False and missed.plan.chosen is None
    assert sorted(stub.scored) == sorted(f"{s}-c0-fp32" for s in SIZE_MAP)  # nothing derived could help
    # closest: the fastest that keeps the floor (384), and the most accurate within the budget (256)
    assert keys(missed.plan.closest) == ["384-c0-fp32", "256-c0-fp32"]
    assert "no scored candidate meets" in missed.plan.message and "384 px" in missed.plan.message
    only_latency, _ = run(tmp_path, Objective(target_latency=0.05), name="c.json")
    assert only_latency.plan.met is False and keys(only_latency.plan.closest) == ["256-c0-fp32"]


def test_max_drop_keeps_the_original_when_nothing_faster_holds_the_floor():
    interval = DifferenceInterval(0.0, (0.0,) * 101, 100, 0.5)
    lossy = DifferenceInterval(-0.05, tuple(np.linspace(-0.07, -0.03, 101)), 100, 0.5)
    original = Measurement(Candidate(640), 1.0, False, 0.72, interval, 1.0, "size")
    fast = Measurement(Candidate(320), 0.25, False, 0.67, lossy, 1.0, "size")
    result = choose([original, fast], Objective(max_drop=1.0), Candidate(640))
    assert result.met is True and result.chosen is original and "original is kept" in result.message
    assert "no candidate faster" in result.message
    generous = choose([original, fast], Objective(target_latency=1.5), Candidate(640))
    assert generous.chosen is original and "more accurate" in generous.message


def test_frontier_and_near_frontier_rules():
    def m(size, latency, map50):
        return Measurement(Candidate(size), latency, False, map50, DifferenceInterval(0, (0,) * 101, 1, 0.5), 0,
                           "size")

    points = [m(256, 0.2, 0.60), m(320, 0.3, 0.70), m(352, 0.3, 0.69), m(384, 0.4, 0.70), m(416, 0.5, 0.72),
              m(448, 0.6, 0.717)]
    assert keys(pareto_frontier(points)) == ["256-c0-fp32", "320-c0-fp32", "416-c0-fp32"]
    assert keys(near_frontier(points, 0.0)) == ["256-c0-fp32", "320-c0-fp32", "384-c0-fp32", "416-c0-fp32"]
    assert keys(near_frontier(points, 0.005)) == ["256-c0-fp32", "320-c0-fp32", "384-c0-fp32", "416-c0-fp32",
                                                  "448-c0-fp32"]
    assert keys(near_frontier(points, 0.01)) == keys(sorted(points, key=lambda p: p.latency))


def test_resumed_search_calls_nothing_and_an_interrupted_one_loses_nothing(tmp_path):
    first, stub = run(tmp_path, Objective(target_latency=0.33))
    again, stub2 = run(tmp_path, Objective(target_latency=0.33))
    assert stub2.scored == [] and stub2.timed == [] and again.scored_now == 0
    assert again.plan.chosen == first.plan.chosen and keys(again.measurements) == keys(first.measurements)
    assert again.cpu_seconds == pytest.approx(first.cpu_seconds)

    class Interrupt(Exception):
        pass

    crashing = Stub()
    score = crashing.score

    def score_then_crash(c: Candidate) -> MatchTable:
        if len(crashing.scored) == 9:
            raise Interrupt
        return score(c)

    crashing.score = score_then_crash
    with pytest.raises(Interrupt):
        run(tmp_path, Objective(target_latency=0.33), crashing, name="crash.json")
    resumed, rest = run(tmp_path, Objective(target_latency=0.33), name="crash.json")
    assert "640-c0-fp32" not in rest.scored  # the original's records were kept beside the cache
    assert sorted(crashing.scored + rest.scored) == sorted(stub.scored)
    assert resumed.plan.chosen.candidate == first.plan.chosen.candidate


def test_cache_refuses_other_settings_and_garbage(tmp_path):
    run(tmp_path, Objective())
    with pytest.raises(AscendSlimError, match="other settings \\(bootstrap differ\\)"):
        search(SPACE, Objective(), Stub().score, Stub().latency, tmp_path / "cache.json", {"model": "stub"},
               resamples=200, seed=1)
    with pytest.raises(AscendSlimError, match="other settings \\(model differ\\)"):
        MeasurementCache(tmp_path / "cache.json", {"model": "other", "latency_estimated": False,
                                                   "bootstrap": {"resamples": 200, "seed": 0}})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AscendSlimError, match="unreadable"):
        MeasurementCache(tmp_path / "bad.json", {})


def test_objective_validation():
    for bad in [dict(target_latency=0), dict(max_drop=-1), dict(confidence=0.3)]:
        with pytest.raises(AscendSlimError):
            Objective(**bad)


def test_report_files(tmp_path):
    result, _ = run(tmp_path, Objective(target_latency=0.33))
    paths = write_report(result, tmp_path / "report")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["png"].stat().st_size > 20000
    data = json.loads(paths["json"].read_text())
    assert len(data["candidates"]) == len(result.measurements) == data["scored"]
    assert [r["key"] for r in data["candidates"] if r["chosen"]] == ["384-c0-int8"]
    assert data["plan"]["chosen"] == "384-c0-int8" and data["plan"]["met"] is True
    text = paths["markdown"].read_text()
    assert "| 384-c0-int8 **chosen** | 384 |" in text and "640-c0-fp32 (original)" in text
    assert "Timed but not scored" in text
    assert [(r["step"], r["key"]) for r in data["contributions"]] == [
        ("original", "640-c0-fp32"), ("input size", "384-c0-fp32"), ("+ INT8", "384-c0-int8")]
    assert "| input size | 384-c0-fp32 | 0.360 | 2.78x |" in text
