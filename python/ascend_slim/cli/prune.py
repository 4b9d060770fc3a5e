"""``ascend-slim prune``: channel pruning (network slimming or filter norms) or unstructured magnitude pruning."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .args import channel_multiple, fraction, image_size

NAME = "prune"
HELP = "prune a checkpoint: channels (by percent, FLOPs or latency target) or unstructured weight magnitude"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True,
                   help="unfused checkpoint .pt (official Ultralytics or ascend-slim), or a model yaml (untrained)")
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--percent", type=fraction, help="prune this fraction of all channels by one global threshold")
    goal.add_argument("--target-flops", type=fraction, metavar="R",
                      help="least pruning with FLOPs at most R x the original's at --img")
    goal.add_argument("--target-latency", type=fraction, metavar="R",
                      help="least pruning with onnxruntime CPU latency (1 thread) at most R x the original's")
    p.add_argument("--method", choices=("slim", "l1", "l2", "magnitude"), default="slim",
                   help="slim: BN |gamma| (default); l1/l2: filter norms; magnitude: unstructured weight zeros")
    p.add_argument("--amount", type=fraction, help="magnitude: fraction of conv weights to zero")
    p.add_argument("--scope", choices=("global", "layer"), default="global",
                   help="magnitude: rank all conv weights together (default) or each layer alone")
    p.add_argument("--round-to", type=channel_multiple, default=1,
                   help="round every kept channel count up to a multiple (16: Ascend cube unit, 8: CPU SIMD)")
    p.add_argument("--min-keep", type=fraction, default=0.0, help="keep at least this fraction of every layer")
    p.add_argument("--img", "--img-size", dest="img", type=image_size, default=640,
                   help="image size for FLOPs and latency (default 640)")
    p.add_argument("--no-fold-bias", dest="fold_bias", action="store_false",
                   help="drop removed channels' constant output instead of folding it into the next layers")
    p.add_argument("--force", action="store_true",
                   help="prune above the safety bound (a layer then keeps its best channel, or --round-to of them)")
    p.add_argument("--classes", choices=("voc", "coco"), help="remap the model to this class set first")
    p.add_argument("--report", help="write what was pruned (kept indices per BatchNorm, threshold, costs) as JSON")
    p.add_argument("--cfg", help="accepted for midasklr compatibility and ignored: the architecture is in --weights")
    p.add_argument("-o", "--output", required=True, help="pruned checkpoint .pt")


def _load(weights: str, classes: str | None):
    from ..classes import resolve_class_set
    from ..errors import AscendSlimError
    from ..model.remap import load_for_classes, remap_classes
    from ..model.yolo import YOLOv5

    path = Path(weights)
    if path.suffix.lower() in (".yaml", ".yml"):
        print(f"note: {path.name} is a model yaml: pruning untrained weights")
        model = YOLOv5.from_yaml(path)
        return (remap_classes(model, resolve_class_set(classes)) if classes else model).eval()
    if not path.is_file():
        raise AscendSlimError(f"weights {path} not found")
    return load_for_classes(path, classes or "")[0].eval()


def _channels(args: argparse.Namespace, model) -> tuple[object, dict]:
    from ..prune import prune_channels
    from ..prune.planner import format_layer_table

    result = prune_channels(model, method=args.method, percent=args.percent, target_flops=args.target_flops,
                            target_latency=args.target_latency, round_to=args.round_to, min_keep=args.min_keep,
                            img_size=args.img, fold_bias=args.fold_bias, force=args.force)
    plan, record = result.plan, result.record
    print(format_layer_table(result.table))
    print(f"threshold {plan.threshold:.4g} at percent {plan.percent:.3f}; safety bound {plan.safety_bound:.4g}, "
          f"largest safe percent {plan.max_safe_percent:.3f}" + (" (forced past it)" if plan.forced else ""))
    if "flops_ratio" in plan.reached:
        print(f"reached FLOPs ratio {plan.reached['flops_ratio']:.3f} (target {args.target_flops})")
    if "latency_ratio" in plan.reached:
        print(f"reached latency ratio {plan.reached['latency_ratio']:.3f} (target {args.target_latency}; "
              "onnxruntime, 1 thread, medians side by side with the original)")
    print(f"params {record['params'][0]:,} -> {record['params'][1]:,}; GFLOPs @{args.img} "
          f"{record['gflops'][0]:.2f} -> {record['gflops'][1]:.2f}")
    return result.model, {**record, "layers": result.table}


def _magnitude(args: argparse.Namespace, model) -> tuple[object, dict]:
    from ..prune.magnitude import checkpoint_sizes, magnitude_prune

    if args.amount is None:
        from ..errors import AscendSlimError

        raise AscendSlimError("--method magnitude needs --amount (the fraction of conv weights to zero)")
    result = magnitude_prune(model, args.amount, scope=args.scope)
    record = result.record
    width = max(len(name) for name in record["layers"])
    for name, sparsity in record["layers"].items():
        print(f"{name:<{width}}  {sparsity:6.1%}")
    sizes = {"before": checkpoint_sizes(model, args.img), "after": checkpoint_sizes(result.model, args.img)}
    print(f"sparsity: conv weights {record['conv_sparsity']:.1%}, all parameters {record['param_sparsity']:.1%} "
          f"({args.scope} scope)")
    print(f"checkpoint MB raw {sizes['before']['raw'] / 1e6:.2f} -> {sizes['after']['raw'] / 1e6:.2f}, "
          f"zip-compressed {sizes['before']['compressed'] / 1e6:.2f} -> {sizes['after']['compressed'] / 1e6:.2f} "
          "(dense runtimes run no faster)")
    return result.model, {**record, "checkpoint_bytes": sizes}


def run(args: argparse.Namespace) -> int:
    from ..errors import AscendSlimError
    from ..fileio import atomic_write_text, check_outputs
    from ..model.checkpoint import save_checkpoint

    goals = [g for g in ("percent", "target_flops", "target_latency") if getattr(args, g) is not None]
    if args.method == "magnitude" and goals:
        raise AscendSlimError(f"--method magnitude takes --amount, not --{goals[0].replace('_', '-')}")
    if args.method != "magnitude" and args.amount is not None:
        raise AscendSlimError("--amount is for --method magnitude; channel pruning takes --percent or a target")
    if args.method != "magnitude" and not goals:
        raise AscendSlimError(f"--method {args.method} needs one of --percent, --target-flops, --target-latency")
    check_outputs([("--weights", args.weights)], files=[("-o", args.output), ("--report", args.report)])
    if args.cfg:
        print(f"note: --cfg {args.cfg} is ignored: the architecture comes from --weights")
    model = _load(args.weights, args.classes)
    pruned, report = (_magnitude if args.method == "magnitude" else _channels)(args, model)
    save_checkpoint(args.output, pruned, img_size=args.img)
    print(f"pruned model -> {args.output}")
    if args.report:
        report = {"weights": str(args.weights), "output": str(args.output), **report}
        atomic_write_text(args.report, json.dumps(report, indent=2) + "\n")
        print(f"report -> {args.report}")
    return 0
