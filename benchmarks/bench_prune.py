"""Channel pruning: is it faster, what does it cost, how fast is the planner.

1. yolov5s built from yaml, gammas drawn |N(0,1)| (seeded), 640: slim 50 % of the prunable channels with
   round-to 8, without rounding and with round-to 16; onnxruntime CPU latency pruned/unpruned measured side
   by side (round-robin medians), single-threaded (target <= 0.5) and on all cores.
2. Official yolov5n remapped to the 20 VOC classes, --target-flops 0.6 and --target-latency 0.66 (round-to 8,
   force: the official weights are not sparsity-trained and their safety bound stops at ~0.26 of channels):
   reached ratios, params, and mAP@0.5 (VOC07 11-point) on the shared VOC2007 test subset before any
   finetuning, with and without bias folding; also percent 0.01, where the unfinetuned model still works.
3. Planner + surgery time for yolov5x built from yaml (percent 0.5 and target-flops 0.5, round-to 8).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from _common import DATA, parser, write_json

from ascend_slim.classes import VOC_CLASSES
from ascend_slim.export import export_onnx
from ascend_slim.model import YOLOv5
from ascend_slim.model.cost import model_cost
from ascend_slim.model.remap import load_for_classes
from ascend_slim.prune import build_graph, prune_channels, prune_model
from ascend_slim.report.compare import voc_map
from ascend_slim.report.latency import measure_latency
from ascend_slim.report.machine import describe_cpu

IMG = 640


def slim_gammas(cfg: str, seed: int = 0) -> YOLOv5:
    """A yaml model whose BN gammas are |N(0,1)| (seeded): a stand-in for a sparsity-trained network."""
    model = YOLOv5.from_yaml(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.randn(m.num_features, generator=g).abs())
    return model


def latency_ratios(paths: list[Path], runs: int) -> dict[str, list[float]]:
    """Latency of each model over the first, 1 thread and all cores, every model in the same round-robin run."""
    out = {}
    for threads, key in ((1, "1 thread"), (0, "all cores")):
        lat = measure_latency(paths, threads=threads, runs=runs, img_size=IMG)
        out[key] = [m.median_ms / lat[0].median_ms for m in lat]
        out[f"{key} ms"] = [m.median_ms for m in lat]
    return out


def alignment(tmp: Path, runs: int) -> list[dict]:
    model = slim_gammas("yolov5s")
    rows = [{"experiment": "1 yolov5s 50%", "variant": "unpruned", "model": model}]
    for round_to in (8, 1, 16):
        result = prune_channels(model, percent=0.5, round_to=round_to, img_size=IMG, progress=False)
        rows.append({"experiment": "1 yolov5s 50%", "variant": f"round-to {round_to}", "model": result.model,
                     "percent": result.plan.percent})
    paths = [export_onnx(r["model"], tmp / f"s{k}.onnx", img_size=IMG) for k, r in enumerate(rows)]
    ratios = latency_ratios(paths, runs)
    for k, row in enumerate(rows):
        row.update({key: values[k] for key, values in ratios.items()})
    return rows


def targets(tmp: Path, runs: int) -> list[dict]:
    model = load_for_classes(DATA / "weights" / "yolov5n.pt", VOC_CLASSES)[0].eval()
    graph = build_graph(model)
    rows = [{"experiment": "2 yolov5n VOC", "variant": "unpruned", "model": model}]
    for goal in ({"percent": 0.01}, {"target_flops": 0.6}, {"target_latency": 0.66}):
        result = prune_channels(model, round_to=8, force=True, img_size=IMG, latency_runs=runs, **goal)
        name = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in goal.items())
        reached = {k: v for k, v in result.plan.reached.items() if k.endswith("ratio")}
        for fold in (True, False):
            pruned = result.model if fold else prune_model(model, graph, result.plan.keep, fold_bias=False)
            rows.append({"experiment": "2 yolov5n VOC", "variant": f"{name}, {'fold' if fold else 'no fold'}",
                         "model": pruned, "percent": result.plan.percent, **reached})
    paths = [export_onnx(r["model"], tmp / f"n{k}.onnx", img_size=IMG) for k, r in enumerate(rows)]
    ratios = latency_ratios(paths, runs)
    for k, (row, path) in enumerate(zip(rows, paths)):
        row.update({key: values[k] for key, values in ratios.items()})
        row["map50_voc07"] = voc_map(path, DATA / "VOCdevkit", IMG, progress=False)["ap50_voc07"]
    return rows


def planner_speed() -> list[dict]:
    model = slim_gammas("yolov5x")
    rows = []
    for goal in ({"percent": 0.5}, {"target_flops": 0.5}):
        start = time.perf_counter()
        result = prune_channels(model, round_to=8, img_size=IMG, **goal)
        seconds = time.perf_counter() - start
        name = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in goal.items())
        rows.append({"experiment": "3 yolov5x planner", "variant": name, "model": result.model, "seconds": seconds,
                     "percent": result.plan.percent})
    return rows


def _cell(row: dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if row.get(key) is not None else "-".rjust(int(fmt.split(".")[0]))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20, help="timed latency rounds per model (default 20)")
    args = p.parse_args()
    print(f"CPU: {describe_cpu()}")
    with tempfile.TemporaryDirectory(prefix="bench-prune-") as tmp:
        rows = alignment(Path(tmp), args.runs) + targets(Path(tmp), args.runs) + planner_speed()
    header = (f"{'experiment':<18} {'variant':<30} {'percent':>7} {'reached':>7} {'params':>10} {'GFLOPs':>6} "
              f"{'lat 1t':>6} {'lat all':>7} {'mAP@.5':>6} {'s':>5}")
    print(header)
    print("-" * len(header))
    for r in rows:
        model = r.pop("model")
        cost = model_cost(model, IMG)
        r.update(params=cost.params, gflops=cost.gflops,
                 reached=r.get("flops_ratio", r.get("latency_ratio")))
        print(f"{r['experiment']:<18} {r['variant']:<30} {_cell(r, 'percent', '7.3f')} {_cell(r, 'reached', '7.3f')} "
              f"{r['params']:>10,} {r['gflops']:>6.2f} {_cell(r, '1 thread', '6.3f')} {_cell(r, 'all cores', '7.3f')} "
              f"{_cell(r, 'map50_voc07', '6.3f')} {_cell(r, 'seconds', '5.1f')}")
    print("percent: of prunable channels; reached: FLOPs or measured latency ratio the planner stopped at; lat: "
          f"latency ratio to the experiment's unpruned model (onnxruntime CPU, medians of {args.runs} round-robin "
          "rounds, 1 thread and all cores); mAP@.5: VOC07 11-point on VOC2007 test before finetuning. "
          "The machine was shared with other sessions.")
    write_json(args.json, {"img_size": IMG, "runs": args.runs, "rows": rows})


if __name__ == "__main__":
    main()
