"""INT8 quantization of yolov5n (COCO classes mapped to VOC, 640 static): size, latency and accuracy of float and
INT8 variants, measured in one run.

Targets (issue 12): the default INT8 model >= 1.5x faster than float on one onnxruntime thread (>= 2x on a CPU with
VNNI) with <= 1.5 points of mAP@0.5 (VOC07) lost on the VOC2007 test subset. Rows: float; which nodes stay float
(Detect convs, stem conv) with per-channel minmax; per-tensor weights; entropy and percentile calibration; with
``--slimmed M.onnx`` a slimmed float model and its INT8 version. Calibration uses VOC trainval only; latency is
measured side by side (round-robin medians, ``report.latency``) on 1 thread and on all cores; throughput is
``Detector.stream`` over the test images with eval and detect settings, float and INT8 in alternating rounds.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from _common import DATA, parser, voc_test_images, write_json
from onnx import numpy_helper

from ascend_slim import Detector
from ascend_slim.classes import VOC_CLASSES
from ascend_slim.data.voc import load_voc
from ascend_slim.evaluation import VAL_SETTINGS as EVAL_SETTINGS
from ascend_slim.evaluation import evaluate
from ascend_slim.quant.calibration import voc_images
from ascend_slim.quant.static import quantize_model
from ascend_slim.report.latency import measure_latency
from ascend_slim.report.machine import cpu_info, describe_cpu

DETECT_SETTINGS = dict(conf_thres=0.25, iou_thres=0.45, max_det=1000, rect=False)
DEFAULT = dict(per_channel=True, method="percentile", keep_head_float=True, keep_first_conv_float=True)
# name -> options that differ from DEFAULT (quantize_model's defaults)
VARIANTS = {
    "INT8 default (per-channel, percentile, Detect+stem float)": {},
    "INT8, minmax calibration": dict(method="minmax"),
    "INT8, entropy calibration": dict(method="entropy"),
    "INT8, per-tensor weights": dict(per_channel=False),
    "INT8, every conv INT8": dict(keep_head_float=False, keep_first_conv_float=False),
    "INT8, Detect convs float only": dict(keep_first_conv_float=False),
    "INT8, stem conv float only": dict(keep_head_float=False),
}


def export_voc_yolov5n(path: Path, img_size: int = 640) -> Path:
    from ascend_slim.export import export_onnx
    from ascend_slim.model.remap import load_for_classes

    model, _ = load_for_classes(DATA / "weights" / "yolov5n.pt", VOC_CLASSES)
    return export_onnx(model, path, img_size=img_size)


def conv_weights(path: Path) -> list[np.ndarray]:
    """Each Conv's weight (through its DequantizeLinear in a QDQ model) and bias, as arrays."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    dq = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return [numpy_helper.to_array(inits[dq.get(name, name)])
            for n in model.graph.node if n.op_type == "Conv" for name in n.input[1:]]


def model_facts(path: Path) -> dict:
    arrays = conv_weights(path)
    kernels = [a for a in arrays if a.ndim == 4]
    aligned = sum(1 for k in kernels if k.shape[0] % 16 == 0 and k.shape[1] % 16 == 0)
    return {"params": int(sum(a.size for a in arrays)), "size_bytes": path.stat().st_size,
            "convs_aligned16": f"{aligned}/{len(kernels)}"}


def runtime_ops(path: Path) -> dict[str, int]:
    """Op types onnxruntime's CPU provider actually runs after its graph optimisations (QLinear* = INT8)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    return dict(Counter(n.op_type for n in optimized.graph.node).most_common())


def op_times(paths: dict[str, Path], runs: int) -> dict[str, dict[str, float]]:
    """Per model, milliseconds per image spent in each op type on one thread (onnxruntime's profiler, mean over
    ``runs``), the models run in turn as ``measure_latency`` does."""
    import json

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        sessions, feeds = {}, {}
        for i, (name, path) in enumerate(paths.items()):
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / f"profile{i}")
            sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            inp = sessions[name].get_inputs()[0]
            shape = [d if isinstance(d, int) else 640 for d in inp.shape]
            feeds[name] = {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
        for _ in range(runs):
            for name, session in sessions.items():
                session.run(None, feeds[name])
        profiles = {}
        for name, session in sessions.items():
            times: Counter[str] = Counter()
            for e in json.loads(Path(session.end_profiling()).read_text()):
                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                    times[e["args"]["op_name"]] += e["dur"] / 1e3 / runs
            profiles[name] = {op: round(ms, 2) for op, ms in times.most_common()}
    return profiles


def accuracy(path: Path, ds) -> dict[str, float]:
    with Detector(path, num_threads=1, **EVAL_SETTINGS) as det:
        result = evaluate(det, ds, progress=False)
    return {"ap50_voc07": result.means["ap50_voc07"], "ap50_95": result.means["ap50_95"]}


def throughput(paths: dict[str, Path], images: list[Path], settings: dict, rounds: int) -> dict[str, float]:
    """Median images/s of ``Detector.stream`` (one single-threaded inference per core) per model, alternating."""
    detectors = {name: Detector(p, num_threads=1, **settings) for name, p in paths.items()}
    samples: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for det in detectors.values():
            det.predict(images[0])  # warm-up
        for _ in range(rounds):
            for name, det in detectors.items():
                start = time.perf_counter()
                for _ in det.stream(images):
                    pass
                samples[name].append(len(images) / (time.perf_counter() - start))
    finally:
        for det in detectors.values():
            det.close()
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--num-images", type=int, default=200, help="calibration images from VOC trainval (200)")
    p.add_argument("--runs", type=int, default=30, help="latency rounds per model (30)")
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds per model (3)")
    p.add_argument("--slimmed", type=Path, help="a slimmed float ONNX (VOC classes, static): adds two rows")
    p.add_argument("--test-images", type=int, default=None, help="score on the first N test images (default all)")
    p.add_argument("--keep", type=Path, help="keep the models in this folder (default: a temporary one)")
    p.add_argument("--default-only", action="store_true",
                   help="quantize only the default variant (the others take ~15 min of calibration)")
    args = p.parse_args()
    info = cpu_info()
    print(f"CPU: {describe_cpu(info)}; onnxruntime threads: 1 and all {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        calib = voc_images(DATA / "VOCdevkit", args.num_images, split="trainval")
        models = {"float": export_voc_yolov5n(work / "yolov5n_voc.onnx")}
        variants = list(VARIANTS.items())[:1] if args.default_only else VARIANTS.items()
        for i, (name, changes) in enumerate(variants):
            options = {**DEFAULT, **changes}
            t = time.perf_counter()
            report = quantize_model(models["float"], work / f"int8_{i}.onnx", calib, progress=False,
                                    calibration_cache=work / f"ranges_{options['method']}.json", **options)
            print(f"quantized {name} in {time.perf_counter() - t:.0f} s: {report.quantized_convs} INT8 convs, "
                  f"float nodes {report.float_nodes}")
            models[name] = report.path
        if args.slimmed:
            models["slimmed"] = args.slimmed
            models["slimmed + INT8"] = quantize_model(args.slimmed, work / "slimmed_int8.onnx", calib, progress=False,
                                                      **DEFAULT).path

        ds = load_voc(DATA / "VOCdevkit", split="test", class_names=VOC_CLASSES)
        if args.test_images:
            ds.ids = ds.ids[:args.test_images]
            ds.annotations = {i: ds.annotations[i] for i in ds.ids}
        names = list(models)
        one = measure_latency([models[n] for n in names], threads=1, runs=args.runs)
        every = measure_latency([models[n] for n in names], threads=0, runs=args.runs)
        rows = []
        for name, lat1, latn in zip(names, one, every):
            rows.append({"name": name, **model_facts(models[name]), "latency_1t_ms": lat1.median_ms,
                         "latency_all_ms": latn.median_ms, "speedup_1t": one[0].median_ms / lat1.median_ms,
                         "speedup_all": every[0].median_ms / latn.median_ms, **accuracy(models[name], ds)})
        base = rows[0]["ap50_voc07"]
        print(f"\n{'variant':<56}{'params':>10}{'MB':>7}{'al16':>7}{'1t ms':>8}{'x':>6}{'all ms':>8}{'x':>6}"
              f"{'mAP.5':>8}{'d pts':>7}{'.5:.95':>8}")
        for r in rows:
            r["delta_ap50_points"] = 100 * (r["ap50_voc07"] - base)
            print(f"{r['name']:<56}{r['params']:>10,}{r['size_bytes'] / 1e6:>7.2f}{r['convs_aligned16']:>7}"
                  f"{r['latency_1t_ms']:>8.1f}{r['speedup_1t']:>6.2f}{r['latency_all_ms']:>8.1f}{r['speedup_all']:>6.2f}"
                  f"{r['ap50_voc07']:>8.4f}{r['delta_ap50_points']:>+7.2f}{r['ap50_95']:>8.4f}")

        default_name = names[1]
        images = voc_test_images(args.test_images)
        pair = {"float": models["float"], "INT8": models[default_name]}
        stream = {"eval": throughput(pair, images, EVAL_SETTINGS, args.rounds),
                  "detect": throughput(pair, images, DETECT_SETTINGS, args.rounds)}
        for kind, result in stream.items():
            print(f"{kind} throughput over {len(images)} test images: float {result['float']:.1f} images/s, "
                  f"INT8 {result['INT8']:.1f} images/s ({result['INT8'] / result['float']:.2f}x)")
        ops = runtime_ops(models[default_name])
        int8_ops = {k: v for k, v in ops.items() if k.startswith("QLinear")}
        print(f"onnxruntime runs the default INT8 model as: {ops}")
        profile = op_times({name: models[name] for name in ("float", default_name)}, args.runs)
        for name, times in profile.items():
            print(f"1-thread ms per op type, {name}: total {sum(times.values()):.1f}, {times}")

        default = rows[1]
        vnni = any(f in info["flags"] for f in ("avx512_vnni", "avx_vnni"))
        target = 2.0 if vnni else 1.5
        checks = {f"INT8 >= {target}x faster on 1 thread": default["speedup_1t"] >= target,
                  "INT8 loses <= 1.5 points mAP@0.5": default["delta_ap50_points"] >= -1.5}
        for what, ok in checks.items():
            print(f"{'PASS' if ok else 'MISS'}: {what}")
        write_json(args.json, {"rows": rows, "throughput": stream, "runtime_ops_int8_model": ops, "op_ms": profile,
                               "int8_op_types": int8_ops, "calibration": {"split": "trainval", "images": len(calib)},
                               "default_options": DEFAULT, "targets": checks, "runs": args.runs})


if __name__ == "__main__":
    main()
