"""``ascend-slim convert``: run ATC, ONNX -> Ascend ``.om`` (needs the CANN toolkit)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "convert"
HELP = "run ATC: ONNX -> Ascend .om (needs the CANN toolkit)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", required=True, help="ONNX model (ascend-slim raw-head export)")
    aipp = p.add_mutually_exclusive_group(required=True)
    aipp.add_argument("--aipp", help="AIPP config (the bundle's models/yolov5/aipp_yolov5.cfg): NV12 input")
    aipp.add_argument("--no-aipp", action="store_true", help="no AIPP: the .om takes float32 NCHW RGB/255")
    p.add_argument("--soc", default="Ascend310", help="ATC --soc_version (default Ascend310)")
    p.add_argument("-o", "--output", help="output path without .om (default: the ONNX path without suffix)")


def run(args: argparse.Namespace) -> int:
    from ..ascend.atc import convert
    from ..fileio import check_outputs

    output = str(args.output or Path(args.onnx).with_suffix("")).removesuffix(".om")
    check_outputs([("--onnx", args.onnx), ("--aipp", args.aipp)], files=[("-o", f"{output}.om")])
    om = convert(args.onnx, output, args.soc, None if args.no_aipp else args.aipp)
    print(f"converted {args.onnx} -> {om}")
    return 0
