"""``ascend-slim export``: a ``.pt`` checkpoint to ONNX (opset 11; static for ATC, or dynamic for onnxruntime) or to
an OpenVINO IR (``--format openvino``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import batch_size, image_size, input_size, onnx_opset

NAME = "export"
HELP = "export a .pt checkpoint to ONNX (opset 11, static shapes) or an OpenVINO IR"
DEFAULT_IMG = 640  # for checkpoints that record no size (Ultralytics)
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..meta import HEAD_LAYOUTS

    p.add_argument("--weights", help="checkpoint .pt (official Ultralytics or ascend-slim)")
    p.add_argument("--img", "--img-size", dest="img", type=image_size, default=None,
                   help=f"square input size, a multiple of the model stride in 32-4096 (default: the size an "
                   f"ascend-slim .pt was saved for, e.g. a slim run's final.pt; else {DEFAULT_IMG})")
    p.add_argument("--batch", "--batch-size", dest="batch", type=batch_size, default=1, help="1-256 (default 1)")
    p.add_argument("--opset", type=onnx_opset, default=11, help="ONNX opset, 9-20 (default 11: what ATC takes)")
    p.add_argument("--head", choices=HEAD_LAYOUTS, default="raw",
                   help="raw: the three [1,3,h,w,5+nc] logits (Ascend); decoded: one [1,K,5+nc] output")
    p.add_argument("--classes", choices=("voc", "coco"), help="remap the model to this class set first "
                   "(a COCO model becomes an exact 20-class VOC model)")
    p.add_argument("--dynamic", action="store_true",
                   help="variable height/width for onnxruntime (rectangular letterbox); Ascend needs static")
    p.add_argument("--format", choices=tuple(SUFFIXES), default="onnx",
                   help="onnx (default; ATC, onnxruntime) or openvino: an IR .xml + .bin (needs the openvino extra)")
    p.add_argument("-o", "--output", help="output .onnx, or .xml for openvino (default: <weights name>.onnx/.xml)")


def run(args: argparse.Namespace) -> int:
    from ..errors import AscendSlimError
    from ..export import export_onnx, export_openvino
    from ..fileio import check_outputs
    from ..model.remap import load_for_classes
    from ..weights import resolve_weights

    weights = resolve_weights(args.weights)
    if weights.suffix.lower() != ".pt":
        raise AscendSlimError(f"export needs a .pt checkpoint, got {weights.name}")
    out = Path(args.output or weights.with_suffix(SUFFIXES[args.format]).name)
    check_outputs([("--weights", weights)], files=[("-o", out), ("-o (its .bin)", out.with_suffix(".bin")
                                                                   if args.format == "openvino" else None)])
    if args.format == "openvino" and out.suffix.lower() != ".xml":
        raise AscendSlimError(f"-o {out}: the openvino format is written as a .xml file (its .bin beside it)")
    if args.format == "openvino":
        from ..openvino_ir import import_openvino

        import_openvino()  # before the model is loaded: a missing extra fails at once
    size, why = input_size(args.img, weights, DEFAULT_IMG)
    model, _ = load_for_classes(weights, args.classes)
    export = export_openvino if args.format == "openvino" else export_onnx
    export(model, out, img_size=size, batch=args.batch, opset=args.opset, head=args.head, dynamic=args.dynamic)
    shape = "dynamic size" if args.dynamic else f"{size}x{size}: {why}"
    extra = f" + {out.with_suffix('.bin').name}, OpenVINO IR" if args.format == "openvino" else ""
    print(f"exported {weights.name} -> {out}{extra} ({args.head} head, {shape}, opset {args.opset})")
    return 0
