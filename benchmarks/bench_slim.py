"""Network slimming targets (issue 11): the ``slim`` recipe on the shared VOC2007 subset, end to end.

Official yolov5n remapped to the 20 VOC classes, trained on ``trainval`` (269 images), evaluated on ``test``
(417 images) at 640 (conf 0.001, IoU 0.6, multi-label), last-epoch weights. Speed: onnxruntime CPU latency of
the static 640 ONNX exports, single-threaded sessions side by side (round-robin medians), the all-core ratio
printed beside it. Targets:

1. >= 1.5x faster (1 thread) with <= 1.0 point mAP@0.5 (VOC07) lost, the whole run within 60 minutes;
2. >= 1.25x with <= 0.3 points lost;
3. the run of target 1 without distillation (what distillation buys).

Every setting was chosen on ``train`` -> ``val`` (never on ``test``; see the slim README section and lab
notebook). Each run takes tens of minutes on 2 CPU cores: ``--only 1`` runs one of them, ``--keep DIR`` keeps
the run folders (a rerun with the same DIR resumes them, skipping finished stages).

    python benchmarks/bench_slim.py --json slim.json
    python benchmarks/bench_slim.py --only 2 --keep runs/bench_slim
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import DATA, parser, write_json

# chosen on train -> val (lab notebook run v1): the recipe's defaults (SlimConfig, which run.sh slim and
# ascend-slim slim use too) plus these
TARGET_1 = dict(target_latency=0.65, distill=True, train_img_size=320)
RUNS = {
    "1": {"min_speedup": 1.5, "max_loss_points": 1.0, "max_minutes": 60.0, "settings": TARGET_1},
    "2": {"min_speedup": 1.25, "max_loss_points": 0.3, "max_minutes": None,
          "settings": {**TARGET_1, "target_latency": 0.78}},
    "3": {"min_speedup": 1.5, "max_loss_points": 1.0, "max_minutes": 60.0,
          "settings": {**TARGET_1, "distill": False}},
}


def run_one(key: str, folder: Path) -> dict:
    from dataclasses import replace

    from ascend_slim.recipes.slim import SlimConfig, SlimRun, slim

    spec = RUNS[key]
    resume = (folder / "slim.json").is_file()
    settings = dict(spec["settings"])
    train = replace(SlimConfig().train, train_split="trainval", val_split="test",
                    img_size=settings.pop("train_img_size"))
    config = SlimConfig(weights=str(DATA / "weights" / "yolov5n.pt"), classes="voc", data=str(DATA / "VOCdevkit"),
                        train=train, save_dir=str(folder), **settings)
    start = time.perf_counter()
    run = SlimRun.resume(folder).run() if resume else slim(config)
    report = vars(run.result("report"))
    m = report["map"]["ap50_voc07"]
    speed = report["latency"]
    minutes = sum(r.seconds for r in run.records.values()) / 60
    cpu_minutes = sum(r.cpu_seconds for r in run.records.values()) / 60
    loss = -m["change_points"]
    met = speed["1 thread"]["speedup"] >= spec["min_speedup"] and loss <= spec["max_loss_points"] and \
        (spec["max_minutes"] is None or minutes <= spec["max_minutes"])
    return {"target": key, "settings": spec["settings"], "map_original": m["original"], "map_final": m["final"],
            "map_lost_points": loss, "speedup_1_thread": speed["1 thread"]["speedup"],
            "speedup_all_cores": speed["all cores"]["speedup"], "minutes": minutes, "cpu_minutes": cpu_minutes,
            "stage_seconds": {k: r.seconds for k, r in run.records.items()}, "resumed": resume,
            "wall_minutes_this_call": (time.perf_counter() - start) / 60,
            "goal": {k: v for k, v in spec.items() if k != "settings"}, "met": met}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--only", choices=sorted(RUNS), action="append", help="run only these targets (repeatable)")
    p.add_argument("--keep", help="folder for the run folders (kept; rerunning resumes them)")
    args = p.parse_args()
    keys = args.only or sorted(RUNS)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-slim-"))
    results = []
    for key in keys:
        r = run_one(key, root / f"target{key}")
        results.append(r)
        print(f"target {key}: mAP@0.5 {r['map_original']:.4f} -> {r['map_final']:.4f} ({-r['map_lost_points']:+.2f} "
              f"points), {r['speedup_1_thread']:.2f}x on 1 thread ({r['speedup_all_cores']:.2f}x all cores), "
              f"{r['minutes']:.1f} min ({r['cpu_minutes']:.1f} CPU min) -> {'met' if r['met'] else 'MISSED'}")
    write_json(args.json, {"benchmark": "slim", "runs": results, "folder": str(root)})


if __name__ == "__main__":
    main()
