"""``ascend-slim report``: two models side by side (params, GFLOPs, file sizes, CPU latency, optional VOC mAP)."""

from __future__ import annotations

import argparse
import json

from .args import image_size, iteration_count

NAME = "report"
HELP = "compare models (params, GFLOPs, sizes, latency, mAP with --data), or one model across runtimes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="model A: .pt checkpoint or .onnx (float or INT8)")
    p.add_argument("--compare", help="model B, measured in the same run as A")
    p.add_argument("--runtimes", action="store_true", help="instead of B: model A (.pt or .onnx) on every CPU "
                   "runtime installed (onnxruntime, OpenVINO with the openvino extra), side by side")
    p.add_argument("--data", help="VOCdevkit folder or data yaml: also score mAP (as eval does)")
    p.add_argument("--split", default="", help="split to score (default: test for VOC, val for a yaml)")
    p.add_argument("--img", "--img-size", dest="img", type=image_size, default=640,
                   help="image size for GFLOPs, latency and mAP (default 640)")
    p.add_argument("--runs", type=iteration_count, default=20, help="timed rounds per model (default 20)")
    p.add_argument("--json", help="write the report as JSON")
    p.add_argument("--md", help="write the report as a Markdown table")


def run(args: argparse.Namespace) -> int:
    from ..errors import AscendSlimError
    from ..fileio import atomic_write_text, check_outputs
    from ..report.compare import compare_models, compare_runtimes

    check_outputs([("--weights", args.weights), ("--compare", args.compare), ("--data", args.data)],
                  files=[("--json", args.json), ("--md", args.md)])
    if args.runtimes:
        if args.compare or args.md:
            raise AscendSlimError("--runtimes compares one model across runtimes: drop --compare and --md")
        result = compare_runtimes(args.weights, img_size=args.img, data=args.data, split=args.split, runs=args.runs)
    else:
        result = compare_models(args.weights, args.compare, img_size=args.img, data=args.data, split=args.split,
                                runs=args.runs)
    print(result.format_table())
    if args.json:
        atomic_write_text(args.json, json.dumps(result.to_dict(), indent=2) + "\n")
    if args.md:
        atomic_write_text(args.md, result.format_markdown())
    return 0
