"""Compound slimming targets (issue 18): the ``slim`` recipe with its defaults on the shared VOC2007 subset.

Official yolov5n remapped to the 20 VOC classes; the plan selects on ``trainval`` (269 images, the recipe's default
when nothing is trained; reconstruction and INT8 calibration use its images without labels); the chosen model
is scored once on ``test`` (417 images) at its own input size with the reference protocol (conf 0.001, IoU 0.6,
multi-label), against the original at 640. Speed: onnxruntime CPU latency of ``final.onnx`` against the
official model's static 640 FP32 export, single-threaded sessions side by side (round-robin medians), the
all-core ratio beside it. Targets:

- T1: >= 3.0x faster (1 thread) at <= 1.0 point mAP@0.5 (VOC07) lost, the whole run within 20 CPU minutes;
  the run's settings are ``SlimConfig()``'s (what ``bash run.sh slim`` and ``ascend-slim slim`` use, latency
  budget 0.3);
- T2 (stretch): >= 4.0x at <= 1.0 point: the same recipe with the budget a 4x target implies (0.25), its plan
  starting from T1's measurements (the plan's cache does not depend on the objective).

``--keep DIR`` keeps the run folders (a rerun with the same DIR resumes them, skipping finished stages).

    python benchmarks/bench_slim.py --json slim.json
    python benchmarks/bench_slim.py --keep runs/bench_slim
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from _common import DATA, parser, write_json

TARGETS = {"T1": {"min_speedup": 3.0, "max_loss_points": 1.0, "max_cpu_minutes": 20.0, "settings": {}},
           "T2": {"min_speedup": 4.0, "max_loss_points": 1.0, "max_cpu_minutes": None,
                  "settings": {"target_latency": 0.25}}}


def run_slim(folder: Path, settings: dict, measured: Path | None):
    """The recipe with ``settings`` in ``folder`` (resumed when it exists), its plan seeded with the measurements
    and candidate models of the run folder ``measured``."""
    from ascend_slim.recipes.slim import SlimConfig, SlimRun

    if (folder / "slim.json").is_file():
        return SlimRun.resume(folder).run()
    if measured is not None:
        shutil.copytree(measured / "plan", folder / "plan", ignore=shutil.ignore_patterns("plan.*"))
    config = SlimConfig(weights=str(DATA / "weights" / "yolov5n.pt"), classes="voc", data=str(DATA / "VOCdevkit"),
                        save_dir=str(folder), **settings)
    return SlimRun.create(config, exist_ok=measured is not None).run()  # the folder holds the copied plan/


def summarise(name: str, run, start: float) -> dict:
    goal = TARGETS[name]
    report = run.result("report")
    m, speed, plan = report.map["ap50_voc07"], report.latency, run.result("plan")
    loss = -m["change_points"]
    cpu_minutes = sum(r.cpu_seconds for r in run.records.values()) / 60
    met = speed["1 thread"]["speedup"] >= goal["min_speedup"] and loss <= goal["max_loss_points"] and (
        goal["max_cpu_minutes"] is None or cpu_minutes <= goal["max_cpu_minutes"])
    chosen = plan.chosen
    print(f"{name}: chosen {chosen['img_size']} px, cut {chosen['cut']:g}, {chosen['precision']}: mAP@0.5 on test "
          f"{m['original']:.4f} -> {m['final']:.4f} ({-loss:+.2f} points), {speed['1 thread']['speedup']:.2f}x on 1 "
          f"thread ({speed['all cores']['speedup']:.2f}x all cores), {cpu_minutes:.1f} CPU min -> "
          f"{'met' if met else 'MISSED'}")
    return {
        "target": name, "goal": goal, "met": met, "chosen": chosen, "plan_message": plan.message,
        "candidates_scored": plan.scored, "scored_in_this_run": plan.scored_now,
        "plan_cpu_minutes": plan.cpu_seconds / 60, "contributions": plan.contributions,
        "split": run.result("evaluate").split, "img_size": run.result("evaluate").img_size,
        "map_original": m["original"], "map_final": m["final"], "map_lost_points": loss, "maps": report.map,
        "speedup_1_thread": speed["1 thread"]["speedup"], "speedup_all_cores": speed["all cores"]["speedup"],
        "latency_ms": speed, "minutes": sum(r.seconds for r in run.records.values()) / 60,
        "cpu_minutes": cpu_minutes, "stage_seconds": {k: r.seconds for k, r in run.records.items()},
        "stage_cpu_seconds": {k: r.cpu_seconds for k, r in run.records.items()},
        "wall_minutes_this_call": (time.perf_counter() - start) / 60, "folder": str(run.dir),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--keep", help="folder for the run folders (kept; rerunning resumes them)")
    p.add_argument("--only", choices=sorted(TARGETS), help="run one target (T2 alone measures its plan afresh)")
    args = p.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-slim-"))
    results, previous = [], None
    for name in [args.only] if args.only else sorted(TARGETS):
        start = time.perf_counter()
        run = run_slim(root / name, TARGETS[name]["settings"], previous)
        results.append(summarise(name, run, start))
        previous = run.dir
    write_json(args.json, {"benchmark": "slim", "runs": results, "folder": str(root)})


if __name__ == "__main__":
    main()
