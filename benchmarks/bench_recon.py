"""Least-squares reconstruction (issue 18, target T3): one-shot channel pruning vs pruning + reconstruction.

Official yolov5n remapped to the 20 VOC classes, 640. Each level is a uniform per-layer cut (the same fraction of
every group, the lowest-importance channels inside each group): 2/5/10/20/30 % without rounding, and the uniform
fraction whose single-thread onnxruntime latency is about ``--latency`` x the original's with widths rounded to
16. Reconstruction images come from the VOC ``train`` split (no labels used); mAP@0.5 (VOC07 11-point, the
reference protocol: conf 0.001, IoU 0.6, multi-label, 300 detections, square letterbox) is scored on ``val``.
The test split is refused. Every level runs in its own process, so its peak memory (ru_maxrss) is its own; CPU
seconds are the reconstruction's (``time.process_time``). Prints JSON; ``--json`` also writes it.

Issue 24 options: ``--importance taylor`` / ``taylor-labels`` (YOLO-loss Taylor against the original's own
detections, or the labels), ``--one-shot-only``, ``--depth K`` (drop the K residual bottlenecks ranked best by
recoverability per MACs saved first; the cut then applies to the shallower model), ``--distill-epochs N`` (label-free
distillation recovery after reconstruction, val mAP after every epoch), ``--time`` (latency ratio to the original).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import DATA, parser, write_json

HELD_OUT = "test"
CHILD_OPTIONS = ("latency", "latency_runs", "importance", "importance_images", "pseudo_conf", "round_to", "fit_split",
                 "eval_split", "recon_images", "recon_samples", "ridge", "img", "threads", "depth", "depth_images",
                 "depth_img", "distill_epochs", "distill_lr", "distill_img")
CHILD_FLAGS = ("one_shot_only", "time")


def voc_images(split: str, limit: int | None) -> list[Path]:
    root = DATA / "VOCdevkit" / "VOC2007"
    ids = (root / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
    return [root / "JPEGImages" / f"{i}.jpg" for i in ids[:limit]]


def original_model(classes: str = "voc"):
    from ascend_slim.classes import resolve_class_set
    from ascend_slim.model.checkpoint import load_weights
    from ascend_slim.model.remap import remap_classes

    model, _ = load_weights(DATA / "weights" / "yolov5n.pt")
    return remap_classes(model, resolve_class_set(classes)).eval()


def val_map(model, split: str, img_size: int, tmp: Path, name: str) -> float:
    """mAP@0.5 (VOC07 11-point) of ``model`` exported to ONNX, on ``split`` with the reference protocol."""
    from ascend_slim.data.samples import load_samples
    from ascend_slim.detector import Detector
    from ascend_slim.evaluation import VAL_SETTINGS, evaluate
    from ascend_slim.export import export_onnx

    path = export_onnx(model, tmp / f"{name}.onnx", img_size=img_size)
    dataset = load_samples(DATA / "VOCdevkit", split, class_names=list(model.names), years=["2007"]).eval_dataset()
    with Detector(path, img_size=img_size, num_threads=1, **VAL_SETTINGS) as detector:
        return float(evaluate(detector, dataset, progress=False).means["ap50_voc07"])


def latency_cost(original, graph, img_size: int, tmp: Path, runs: int):
    """Single-thread onnxruntime latency of ``original`` pruned to a kept set, over the original's (round-robin)."""
    from ascend_slim.export import export_onnx
    from ascend_slim.prune import prune_model
    from ascend_slim.report.latency import measure_latency

    base = export_onnx(original, tmp / "latency-original.onnx", img_size=img_size)
    full = [g.width for g in graph.groups]

    def cost(keep: list[torch.Tensor]) -> float:
        if [k.numel() for k in keep] == full:
            return 1.0
        path = export_onnx(prune_model(original, graph, keep, fold_bias=False), tmp / "latency-pruned.onnx",
                           img_size=img_size)
        ref, pruned = measure_latency([base, path], threads=1, runs=runs, img_size=img_size)
        return pruned.median_ms / ref.median_ms

    return cost


def labelled_batches(split: str, limit: int, img_size: int, batch_size: int = 8):
    """``(images in [0, 1], targets)`` batches of the first ``limit`` labelled images of ``split`` (letterboxed)."""
    from ascend_slim.classes import resolve_class_set
    from ascend_slim.data.dataset import DetectionDataset
    from ascend_slim.data.samples import SampleSet, load_samples

    samples = load_samples(DATA / "VOCdevkit", split, class_names=resolve_class_set("voc"), years=["2007"])
    dataset = DetectionDataset(SampleSet(samples.samples[:limit], samples.names), img_size)
    for start in range(0, len(dataset), batch_size):
        images, targets, _, _ = dataset.collate([dataset[i] for i in range(start, min(start + batch_size,
                                                                                      len(dataset)))])
        yield images.float() / 255, targets


def make_importance(args):
    """The channel criterion ``args.importance`` (images from the fit split; labels only for ``taylor-labels``)."""
    from ascend_slim.prune import get_importance
    from ascend_slim.prune.importance import ConsumerOutputImportance, PseudoLabelTaylorImportance, TaylorImportance

    images = voc_images(args.fit_split, args.importance_images)
    if args.importance == "output":
        return ConsumerOutputImportance(images, args.img)
    if args.importance == "taylor":
        return PseudoLabelTaylorImportance(images, args.img, conf_thres=args.pseudo_conf)
    if args.importance == "taylor-labels":
        return TaylorImportance(list(labelled_batches(args.fit_split, args.importance_images, args.img)), args.img)
    return get_importance(args.importance)


def run_level(args) -> dict:
    """One pruning level in this process: blocks dropped (``--depth``), plan, one-shot mAP, reconstruction (time,
    memory), reconstructed mAP, then optionally distillation (``--distill-epochs``) and its mAP."""
    from ascend_slim.distill.recover import distill_recover
    from ascend_slim.prune import build_graph, prune_model
    from ascend_slim.prune.depth import depth_correspondence, drop_blocks, score_blocks
    from ascend_slim.prune.reconstruct import reconstruct
    from ascend_slim.prune.uniform import plan_uniform, plan_uniform_target

    torch.set_num_threads(args.threads)
    original = original_model()
    row: dict = {"level": args.level, "importance": args.importance}
    blocks: list[str] = []
    if args.depth:
        cpu = time.process_time()
        ranked = score_blocks(original, voc_images(args.fit_split, args.depth_images), img_size=args.depth_img)
        blocks = [s.block for s in ranked[:args.depth]]
        row["depth"] = {"dropped": blocks, "cpu_minutes": (time.process_time() - cpu) / 60,
                        "ranking": [{"block": s.block, "error": s.error, "saved": s.saved} for s in ranked]}
    base = drop_blocks(original, blocks).eval() if blocks else original
    graph = build_graph(base)
    cpu = time.process_time()
    scores = make_importance(args)(base, graph)
    row["importance_cpu_minutes"] = (time.process_time() - cpu) / 60
    with tempfile.TemporaryDirectory(prefix="bench-recon-") as tmp:
        tmp = Path(tmp)
        if args.level == "latency":
            cost = latency_cost(base, graph, args.img, tmp, args.latency_runs)
            plan = plan_uniform_target(graph, scores, cost, args.latency, round_to=16, resolution=0.01)
        else:
            plan = plan_uniform(graph, scores, float(args.level), round_to=args.round_to)
        pruned = prune_model(base, graph, plan.keep).eval()
        row.update({k: v for k, v in plan.to_dict().items() if k != "threshold"})
        row["params"] = sum(p.numel() for p in pruned.parameters())
        if args.time:
            row["latency_ratio"] = latency_ratio(original, pruned, args.img, tmp, args.latency_runs)
        row["one_shot"] = val_map(pruned, args.eval_split, args.img, tmp, "one-shot")
        if args.one_shot_only:
            return row
        images = voc_images(args.fit_split, args.recon_images)
        if args.recon_samples:
            first = 0 if plan.percent else min((int(b.split(".")[1]) for b in blocks), default=0)  # exact before
            report = reconstruct(original, pruned, depth_correspondence(base, blocks, plan.keep), images,
                                 samples_per_image=args.recon_samples, ridge=args.ridge, img_size=args.img,
                                 progress=not args.quiet, layers=range(first, len(original.model)))
            row["recon"] = {"images": len(images), "samples_per_image": args.recon_samples, "ridge": args.ridge,
                            "cache_dtype": report.cache_dtype, "seconds": report.seconds,
                            "cpu_minutes": report.cpu_seconds / 60, "peak_rss_mb": _peak_mb(),
                            "median_error_before": _median([f.before for f in report.layers]),
                            "median_error_after": _median([f.after for f in report.layers])}
            row["reconstructed"] = val_map(pruned, args.eval_split, args.img, tmp, "reconstructed")
        row["distilled"], cpu_seconds = [], 0.0
        for epoch in range(args.distill_epochs):  # one call per epoch, so that every epoch is scored
            report = distill_recover(pruned, original, images, 1, args.distill_img or args.img, lr=args.distill_lr,
                                     seed=epoch, progress=not args.quiet)
            cpu_seconds += report.cpu_seconds
            row["distill"] = {**report.to_dict(), "cpu_minutes": cpu_seconds / 60, "peak_rss_mb": _peak_mb()}
            row["distilled"].append(val_map(pruned, args.eval_split, args.img, tmp, "distilled"))
    return row


def latency_ratio(original, model, img_size: int, tmp: Path, runs: int) -> float:
    """Single-thread onnxruntime median latency of ``model`` over ``original``'s (round-robin, one run)."""
    from ascend_slim.export import export_onnx
    from ascend_slim.report.latency import measure_latency

    paths = [export_onnx(m, tmp / f"timed-{i}.onnx", img_size=img_size) for i, m in enumerate((original, model))]
    ref, timed = measure_latency(paths, threads=1, runs=runs, img_size=img_size)
    return timed.median_ms / ref.median_ms


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median(values: list[float]) -> float:
    return float(torch.tensor(values).median())


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--levels", default="0.02,0.05,0.1,0.2,0.3,latency",
                   help="comma-separated uniform fractions, and/or 'latency' (default: all six)")
    p.add_argument("--level", help=argparse.SUPPRESS)
    p.add_argument("--latency", type=float, default=0.8, help="latency ratio of the 'latency' level")
    p.add_argument("--latency-runs", type=int, default=20)
    p.add_argument("--importance", default="slim",
                   help="channel importance inside each group: slim (BN |gamma|, default), l1, l2, output "
                        "(consumer-output energy), taylor (YOLO-loss Taylor against the original's own detections) "
                        "or taylor-labels (the same with the labels): on --importance-images images of the fit split")
    p.add_argument("--importance-images", type=int, default=32)
    p.add_argument("--pseudo-conf", type=float, default=0.25, help="confidence of the 'taylor' pseudo-labels")
    p.add_argument("--one-shot-only", action="store_true", help="plan and score one-shot only (no reconstruction)")
    p.add_argument("--round-to", type=int, default=1, help="rounding of the fraction levels' widths")
    p.add_argument("--fit-split", default="train")
    p.add_argument("--eval-split", default="val")
    p.add_argument("--recon-images", type=int, help="first N images of the fit split (default: all)")
    p.add_argument("--recon-samples", type=int, default=1024, help="positions per image (0: no reconstruction)")
    p.add_argument("--ridge", type=float, default=1e-2)
    p.add_argument("--img", type=int, default=640)
    p.add_argument("--depth", type=int, default=0, help="residual blocks dropped first, chosen by recoverability per "
                   "MACs saved (each cut level then applies to the shallower model)")
    p.add_argument("--depth-images", type=int, default=32, help="fit-split images that score the blocks")
    p.add_argument("--depth-img", type=int, default=320, help="image size at which blocks are scored")
    p.add_argument("--distill-epochs", type=int, default=0, help="distillation epochs after reconstruction (0: none)")
    p.add_argument("--distill-lr", type=float, default=3e-5)
    p.add_argument("--distill-img", type=int, help="image size of the distillation (default --img)")
    p.add_argument("--time", action="store_true", help="also measure the latency ratio to the original")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the reconstruction (default 1)")
    p.add_argument("--baseline", action="store_true", help="also score the unpruned model")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    if HELD_OUT in (args.fit_split, args.eval_split):
        sys.exit(f"the {HELD_OUT} split is held out: choose on train -> val")
    if args.level:
        print(json.dumps(run_level(args)))
        return
    results: dict = {"img_size": args.img, "fit_split": args.fit_split, "eval_split": args.eval_split, "rows": []}
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="bench-recon-") as tmp:
            results["unpruned"] = val_map(original_model(), args.eval_split, args.img, Path(tmp), "original")
        print(f"unpruned {results['unpruned']:.4f}", flush=True)
    forwarded = [f"--{key.replace('_', '-')}={value}" for key, value in vars(args).items()
                 if key in CHILD_OPTIONS and value is not None]
    forwarded += [f"--{key.replace('_', '-')}" for key in CHILD_FLAGS if getattr(args, key)]
    start = time.perf_counter()
    for level in args.levels.split(","):
        out = subprocess.run([sys.executable, __file__, "--level", level, "--quiet", *forwarded],
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"level {level} failed:\n{out.stderr[-3000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        results["rows"].append(row)
        print(json.dumps(row), flush=True)
    results["wall_seconds"] = time.perf_counter() - start
    write_json(args.json, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
