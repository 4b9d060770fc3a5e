"""Every model x CPU runtime side by side in one run: onnxruntime and OpenVINO, FP32 and each runtime's INT8.

Models (the official yolov5n remapped to VOC, static exports): FP32 at 640 and at --int8-size, INT8 at --int8-size
as onnxruntime static QDQ (`ascend-slim quantize`'s defaults) and as NNCF OpenVINO IR with the stem and Detect convs
kept float (`slim --runtime openvino`'s quantizer), both calibrated on the same first --calib-images trainval
images; with --nncf-defaults also NNCF with nothing kept float. Each model runs on every runtime that reads it
(an NNCF IR only on OpenVINO). Latency: all (model, runtime) pairs in one round-robin run per thread count,
medians. Accuracy (--map): VOC07 mAP@0.5 on the whole test split, nothing chosen on it. Boxes: `detect` settings
(conf 0.25, IoU 0.45) on the first --box-images test images, FP32 640 on OpenVINO against onnxruntime, the share
of boxes matched one to one (same class, IoU >= 0.5) both ways. The CPU flags and the load average are recorded.

    python benchmarks/bench_runtimes.py --map --json runtimes.json
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import DATA, parser, voc_test_images, write_json


def build_models(folder: Path, int8_size: int, calib_images: int, nncf_defaults: bool) -> dict[str, dict]:
    """name -> {"files": {runtime: path}, "size": px}: the benchmark's models, written into ``folder``."""
    from ascend_slim.export import export_onnx
    from ascend_slim.model.remap import load_for_classes
    from ascend_slim.openvino_ir import convert_onnx
    from ascend_slim.quant.calibration import voc_images
    from ascend_slim.quant.openvino_int8 import quantize_openvino
    from ascend_slim.quant.static import quantize_model

    model, _ = load_for_classes(DATA / "weights" / "yolov5n.pt", "voc")
    images = voc_images(DATA / "VOCdevkit", calib_images)
    models = {}
    for size in (640, int8_size):
        onnx_path = export_onnx(model, folder / f"fp32-{size}.onnx", img_size=size)
        ir_path = convert_onnx(onnx_path, folder / f"fp32-{size}.xml")
        models[f"FP32 {size}"] = {"size": size, "files": {"onnxruntime": onnx_path, "openvino": ir_path}}
    fp32 = folder / f"fp32-{int8_size}.onnx"
    qdq = quantize_model(fp32, folder / f"qdq-{int8_size}.onnx", images).path
    models[f"INT8 {int8_size} onnxruntime QDQ"] = {"size": int8_size, "files": {"onnxruntime": qdq, "openvino": qdq}}
    nncf = quantize_openvino(fp32, folder / f"nncf-{int8_size}.xml", images).path
    models[f"INT8 {int8_size} NNCF, stem + Detect float"] = {"size": int8_size, "files": {"openvino": nncf}}
    if nncf_defaults:
        plain = quantize_openvino(fp32, folder / f"nncf-all-{int8_size}.xml", images, keep_head_float=False,
                                  keep_first_conv_float=False).path
        models[f"INT8 {int8_size} NNCF, all convs INT8"] = {"size": int8_size, "files": {"openvino": plain}}
    return models


def box_agreement(a: list, b: list) -> float:
    """Share of the boxes in ``a`` (per-image Detections) matched one to one by a box of ``b`` of the same class at
    IoU >= 0.5 (greedy, highest score first)."""
    matched = total = 0
    for da, db in zip(a, b):
        total += len(da)
        free = np.ones(len(db), bool)
        for box, cls in zip(da.boxes, da.class_ids):
            if not free.any():
                break
            x1 = np.maximum(box[0], db.boxes[:, 0])
            y1 = np.maximum(box[1], db.boxes[:, 1])
            x2 = np.minimum(box[2], db.boxes[:, 2])
            y2 = np.minimum(box[3], db.boxes[:, 3])
            inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
            area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
            iou = inter / (area(box) + area(db.boxes) - inter + 1e-9)
            iou[(db.class_ids != cls) | ~free] = 0
            best = int(np.argmax(iou))
            if iou[best] >= 0.5:
                free[best] = False
                matched += 1
    return matched / max(total, 1)


def compare_slim_runs(folders: list[str], runs: int) -> dict:
    """The choices of two finished slim runs, ``--runtime onnxruntime`` then ``--runtime openvino`` (same original):
    each final model on its own runtime and the original on both, side by side on one thread; their test mAPs."""
    from ascend_slim.recipes.slim import SlimRun
    from ascend_slim.report.latency import measure_latency

    slim_runs = [SlimRun.resume(folder) for folder in folders]
    runtimes = [run.config.runtime for run in slim_runs]
    if runtimes != ["onnxruntime", "openvino"]:
        sys.exit(f"bench_runtimes: --slim-runs takes an onnxruntime run then an openvino run, got {runtimes}")
    original = slim_runs[0].result("export").original_onnx
    finals = [(run.result("quantize") or run.result("export")).final_onnx for run in slim_runs]
    timed = measure_latency([original, finals[0], original, finals[1]], threads=1, runs=runs,
                            runtime=["onnxruntime", "onnxruntime", "openvino", "openvino"])
    ms = {key: t.median_ms for key, t in zip(("original onnxruntime", "choice onnxruntime", "original openvino",
                                              "choice openvino"), timed)}
    maps = {rt: {"chosen": run.chosen().to_dict(), "original": run.result("evaluate").original["ap50_voc07"],
                 "final": run.result("evaluate").final["ap50_voc07"]} for rt, run in zip(runtimes, slim_runs)}
    return {"latency_ms": ms, "openvino_choice_vs_onnxruntime_choice": ms["choice onnxruntime"] / ms["choice openvino"],
            "map": maps, "folders": folders}


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--int8-size", type=int, default=384, help="input size of the INT8 models (default 384)")
    p.add_argument("--calib-images", type=int, default=100, help="trainval calibration images (default 100)")
    p.add_argument("--runs", type=int, default=30, help="timed rounds (default 30)")
    p.add_argument("--threads", default="1", help="comma-separated thread counts to time (default 1; 0: all cores)")
    p.add_argument("--map", action="store_true", help="also score every pair on the whole VOC07 test split")
    p.add_argument("--box-images", type=int, default=417, help="test images for the box agreement (default 417)")
    p.add_argument("--nncf-defaults", action="store_true", help="also NNCF with every conv INT8")
    p.add_argument("--slim-runs", nargs=2, metavar=("ONNXRUNTIME_RUN", "OPENVINO_RUN"),
                   help="only compare two finished slim runs (--runtime onnxruntime, --runtime openvino)")
    args = p.parse_args()

    from ascend_slim.detector import Detector
    from ascend_slim.report.latency import measure_latency
    from ascend_slim.report.machine import describe_cpu
    from ascend_slim.runtime.factory import installed_runtimes

    runtimes = installed_runtimes()
    if "openvino" not in runtimes:
        sys.exit("bench_runtimes: OpenVINO is not installed: pip install 'ascend-slim[openvino]'")
    if args.slim_runs:
        before = os.getloadavg()
        results = compare_slim_runs(args.slim_runs, args.runs)
        results["load_average"] = {"before": before, "after": os.getloadavg()}
        ms = results["latency_ms"]
        print(f"CPU: {describe_cpu()}; load average before {before}, after {results['load_average']['after']}")
        for key, value in ms.items():
            print(f"  {key}: {value:.1f} ms ({ms['original onnxruntime'] / value:.2f}x the original on onnxruntime)")
        print(f"OpenVINO's choice on OpenVINO is {results['openvino_choice_vs_onnxruntime_choice']:.2f}x faster than "
              "onnxruntime's choice on onnxruntime")
        for rt, m in results["map"].items():
            print(f"  {rt}: chose {m['chosen']}, test mAP@0.5 {m['original']:.4f} -> {m['final']:.4f} "
                  f"({100 * (m['final'] - m['original']):+.2f} points)")
        write_json(args.json, results)
        return 0
    load = {"before": os.getloadavg()}
    results: dict = {"runtimes": runtimes, "latency_ms": {}, "map": {}, "settings": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench-runtimes-") as tmp:
        models = build_models(Path(tmp), args.int8_size, args.calib_images, args.nncf_defaults)
        pairs = [(name, rt) for name, m in models.items() for rt in runtimes if rt in m["files"]]
        for threads in (int(t) for t in args.threads.split(",")):
            key = f"{threads} thread" if threads == 1 else ("all cores" if threads == 0 else f"{threads} threads")
            print(f"timing {len(pairs)} model x runtime pairs side by side, {key}, {args.runs} rounds", flush=True)
            timed = measure_latency([models[n]["files"][rt] for n, rt in pairs], threads=threads, runs=args.runs,
                                    runtime=[rt for _, rt in pairs])
            results["latency_ms"][key] = {f"{n} | {rt}": t.median_ms for (n, rt), t in zip(pairs, timed)}
        if args.map:
            from ascend_slim.evaluation import evaluate_file, evaluation_set

            dataset = evaluation_set(DATA / "VOCdevkit", "test")
            for name, rt in pairs:
                found = evaluate_file(models[name]["files"][rt], dataset, backend=rt, progress=False)
                results["map"][f"{name} | {rt}"] = float(found.result.means["ap50_voc07"])
                print(f"mAP@0.5 VOC07 {name} on {rt}: {results['map'][f'{name} | {rt}']:.4f}", flush=True)
        images = voc_test_images(args.box_images)
        files = models["FP32 640"]["files"]
        with Detector(files["onnxruntime"]) as ort_det, Detector(files["openvino"]) as ov_det:
            a, b = list(ort_det.stream(images)), list(ov_det.stream(images))
        results["boxes"] = {"images": len(images), "onnxruntime_boxes": sum(map(len, a)),
                            "openvino_boxes": sum(map(len, b)), "matched_of_onnxruntime": box_agreement(a, b),
                            "matched_of_openvino": box_agreement(b, a)}
    load["after"] = os.getloadavg()
    results["load_average"] = load

    print(f"\nCPU: {describe_cpu()}; load average (1, 5, 15 min) before {load['before']}, after {load['after']}")
    base_key = "FP32 640 | onnxruntime"
    for key, table in results["latency_ms"].items():
        print(f"\nlatency, {key} (median of {args.runs} round-robin rounds; speed-up against FP32 640 on onnxruntime)")
        print("| model | " + " | ".join(runtimes) + " |\n|---|" + "---:|" * len(runtimes))
        for name in models:
            cells = []
            for rt in runtimes:
                ms = table.get(f"{name} | {rt}")
                cells.append("-" if ms is None else f"{ms:.1f} ms ({table[base_key] / ms:.2f}x)")
            print(f"| {name} | " + " | ".join(cells) + " |")
    if results["map"]:
        print("\nmAP@0.5 VOC07 on the whole test split")
        for key, value in results["map"].items():
            print(f"  {key}: {value:.4f}")
    boxes = results["boxes"]
    print(f"\nboxes (FP32 640, detect settings, {boxes['images']} test images): {boxes['onnxruntime_boxes']} on "
          f"onnxruntime, {boxes['openvino_boxes']} on OpenVINO; matched {boxes['matched_of_onnxruntime']:.2%} of "
          f"onnxruntime's and {boxes['matched_of_openvino']:.2%} of OpenVINO's (IoU >= 0.5, same class)")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
