"""``ascend-slim deploy``: write the Ascend 310 bundle (ONNX, AIPP, ATC script, MindX pipelines and cfgs)."""

from __future__ import annotations

import argparse

from .args import fraction, image_size, input_size

NAME = "deploy"
HELP = "write the Ascend 310 bundle: ONNX, AIPP, ATC script, MindX pipelines and cfgs"
DEFAULT_IMG = 512  # the Ascend sample's input size, for checkpoints that record none


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..ascend.postprocess_cfg import DETECT_THRESHOLDS, EVAL_THRESHOLDS

    p.add_argument("--weights", help="checkpoint .pt (default: $ASCEND_SLIM_WEIGHTS, else the official yolov5s.pt)")
    p.add_argument("--img", "--img-size", dest="img", type=image_size, default=None,
                   help=f"square model input size, 32-4096 (default: the size an ascend-slim .pt was saved for, "
                   f"e.g. a slim run's final.pt; else {DEFAULT_IMG})")
    p.add_argument("--soc", default="Ascend310", help="ATC --soc_version (default Ascend310)")
    p.add_argument("--classes", choices=("voc", "coco"), help="remap the model to this class set first")
    p.add_argument("--conf-thres", type=fraction, default=DETECT_THRESHOLDS.score,
                   help=f"detect cfgs: SCORE_THRESH and OBJECTNESS_THRESH (default {DETECT_THRESHOLDS.score})")
    p.add_argument("--eval-conf-thres", type=fraction, default=EVAL_THRESHOLDS.score,
                   help=f"eval cfgs: SCORE_THRESH and OBJECTNESS_THRESH (default {EVAL_THRESHOLDS.score})")
    p.add_argument("--iou-thres", type=fraction, default=DETECT_THRESHOLDS.iou,
                   help=f"IOU_THRESH of all cfgs (default {DETECT_THRESHOLDS.iou})")
    p.add_argument("--name", default="model", help="file stem of the model in the bundle (default model)")
    p.add_argument("-o", "--out", default="deploy", help="bundle folder (default deploy/)")
    p.add_argument("--force", action="store_true", help="replace an existing non-empty bundle folder")
    p.add_argument("--write-defaults", metavar="REPO",
                   help="instead of a bundle, regenerate a source checkout's default Ascend files (pipeline/ and "
                        "models/yolov5/ for the sample's yolov5s, 20 VOC classes, 512); needs no weights")


def run(args: argparse.Namespace) -> int:
    from ..ascend.bundle import default_files, deploy, write_files
    from ..ascend.postprocess_cfg import Thresholds
    from ..fileio import check_outputs
    from ..weights import resolve_weights

    if args.write_defaults:
        for path in write_files(args.write_defaults, default_files()):
            print(path)
        return 0
    weights = resolve_weights(args.weights)
    check_outputs([("--weights", weights)], folders=[("-o", args.out)])
    size, why = input_size(args.img, weights, DEFAULT_IMG)
    out = deploy(weights, args.out, img_size=size, soc=args.soc, classes=args.classes,
                 detect=Thresholds(args.conf_thres, args.conf_thres, args.iou_thres),
                 evaluate=Thresholds(args.eval_conf_thres, args.eval_conf_thres, args.iou_thres),
                 name=args.name, force=args.force)
    print(f"bundle written to {out}/ (input {size}x{size}: {why}) — next, on a CANN machine: bash "
          f"{out}/convert.sh (see {out}/README.txt)")
    return 0
