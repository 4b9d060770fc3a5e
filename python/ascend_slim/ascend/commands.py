"""The ``deploy`` and ``convert`` subcommands of the ``ascend-slim`` CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import _fraction, _positive_int
from .postprocess_cfg import DETECT_THRESHOLDS, EVAL_THRESHOLDS, Thresholds


def _cmd_deploy(args: argparse.Namespace) -> int:
    from ..weights import resolve_weights
    from .bundle import deploy

    out = deploy(resolve_weights(args.weights), args.out, img_size=args.img, soc=args.soc, classes=args.classes,
                 detect=Thresholds(args.conf_thres, args.conf_thres, args.iou_thres),
                 evaluate=Thresholds(args.eval_conf_thres, args.eval_conf_thres, args.iou_thres),
                 name=args.name, force=args.force)
    print(f"bundle written to {out}/ — next, on a CANN machine: bash {out}/convert.sh (see {out}/README.txt)")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .atc import convert

    output = args.output or str(Path(args.onnx).with_suffix(""))
    om = convert(args.onnx, output, args.soc, None if args.no_aipp else args.aipp)
    print(f"converted {args.onnx} -> {om}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``deploy`` and ``convert`` to the CLI's subparsers (each sets ``func``)."""
    p = sub.add_parser("deploy", help="write the Ascend 310 bundle: ONNX, AIPP, ATC script, MindX pipelines and cfgs")
    p.add_argument("--weights", help="checkpoint .pt (default: $ASCEND_SLIM_WEIGHTS, else the official yolov5s.pt)")
    p.add_argument("--img", "--img-size", dest="img", type=_positive_int, default=512,
                   help="square model input size (default 512)")
    p.add_argument("--soc", default="Ascend310", help="ATC --soc_version (default Ascend310)")
    p.add_argument("--classes", choices=("voc", "coco"), help="remap the model to this class set first")
    p.add_argument("--conf-thres", type=_fraction, default=DETECT_THRESHOLDS.score,
                   help=f"detect cfgs: SCORE_THRESH and OBJECTNESS_THRESH (default {DETECT_THRESHOLDS.score})")
    p.add_argument("--eval-conf-thres", type=_fraction, default=EVAL_THRESHOLDS.score,
                   help=f"eval cfgs: SCORE_THRESH and OBJECTNESS_THRESH (default {EVAL_THRESHOLDS.score})")
    p.add_argument("--iou-thres", type=_fraction, default=DETECT_THRESHOLDS.iou,
                   help=f"IOU_THRESH of all cfgs (default {DETECT_THRESHOLDS.iou})")
    p.add_argument("--name", default="model", help="file stem of the model in the bundle (default model)")
    p.add_argument("-o", "--out", default="deploy", help="bundle folder (default deploy/)")
    p.add_argument("--force", action="store_true", help="replace an existing non-empty bundle folder")
    p.set_defaults(func=_cmd_deploy)

    p = sub.add_parser("convert", help="run ATC: ONNX -> Ascend .om (needs the CANN toolkit)")
    p.add_argument("--onnx", required=True, help="ONNX model (ascend-slim raw-head export)")
    aipp = p.add_mutually_exclusive_group(required=True)
    aipp.add_argument("--aipp", help="AIPP config (the bundle's models/yolov5/aipp_yolov5.cfg): NV12 input")
    aipp.add_argument("--no-aipp", action="store_true", help="no AIPP: the .om takes float32 NCHW RGB/255")
    p.add_argument("--soc", default="Ascend310", help="ATC --soc_version (default Ascend310)")
    p.add_argument("-o", "--output", help="output path without .om (default: the ONNX path without suffix)")
    p.set_defaults(func=_cmd_convert)
