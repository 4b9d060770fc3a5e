"""``ascend-slim quantize``: static INT8 (onnxruntime QDQ) of an ONNX export, calibrated on images letterboxed as
``eval`` does; optionally the AMCT calibration config for the Ascend INT8 route."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import int_range

NAME = "quantize"
HELP = "INT8-quantize an ONNX export for onnxruntime (static QDQ) or OpenVINO (NNCF); AMCT config for Ascend"
image_count = int_range(1, 100_000)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..quant import CALIBRATION_METHODS, DEFAULT_METHOD, DEFAULT_SPLIT

    p.add_argument("--onnx", required=True, help="float ONNX export (`ascend-slim export`; with --runtime openvino "
                   "also an IR .xml)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--calib", metavar="DIR", help="folder of calibration images (the first --num-images by name)")
    source.add_argument("--calib-data", metavar="VOCdevkit", help="VOC root: calibrate on --calib-split images")
    p.add_argument("--calib-split", default=DEFAULT_SPLIT,
                   help=f"VOC image set to calibrate on (default {DEFAULT_SPLIT}; test is held out and refused)")
    p.add_argument("--year", default="2007", help="VOC year (default 2007)")
    p.add_argument("--num-images", type=image_count, default=200, help="calibration images (default 200)")
    p.add_argument("--method", choices=CALIBRATION_METHODS, default=DEFAULT_METHOD,
                   help=f"activation range calibration (default {DEFAULT_METHOD})")
    p.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=True,
                   help="one weight scale per output channel (default; --no-per-channel: one per tensor)")
    p.add_argument("--keep-head-float", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the Detect convs float (default)")
    p.add_argument("--keep-first-conv-float", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the stem conv float (default)")
    p.add_argument("--exclude", default="", metavar="NODE,...", help="more node names to keep float")
    p.add_argument("--amct-config", metavar="FILE",
                   help="also write AMCT's calibration config (same float layers) for the Ascend INT8 route")
    p.add_argument("--runtime", choices=("onnxruntime", "openvino"), default="onnxruntime",
                   help="whose quantizer: onnxruntime static QDQ (default, an .onnx) or openvino: NNCF into an IR "
                   ".xml (--method, --per-channel and --amct-config do not apply; needs the openvino extra)")
    p.add_argument("-o", "--output", help="output .onnx, or .xml for openvino (default: <onnx stem>.int8.onnx/.xml "
                   "beside the input)")


def run(args: argparse.Namespace) -> int:
    from ..errors import AscendSlimError
    from ..fileio import check_outputs
    from ..quant.amct import write_amct_config
    from ..quant.calibration import folder_images, voc_images
    from ..quant.static import quantize_model

    onnx_path = Path(args.onnx)
    suffix = ".xml" if args.runtime == "openvino" else ".onnx"
    out = Path(args.output) if args.output else onnx_path.with_name(f"{onnx_path.stem}.int8{suffix}")
    if out.suffix.lower() != suffix:
        raise AscendSlimError(f"-o {out}: the {args.runtime} quantizer writes a {suffix} file")
    if args.runtime == "openvino" and args.amct_config:
        raise AscendSlimError("--amct-config belongs to the onnxruntime route (its node names): drop --runtime")
    check_outputs([("--onnx", onnx_path), ("--calib", args.calib), ("--calib-data", args.calib_data)],
                  files=[("-o", out), ("--amct-config", args.amct_config)])
    if args.calib:
        images, source = folder_images(args.calib, args.num_images), args.calib
    else:
        images = voc_images(args.calib_data, args.num_images, split=args.calib_split, year=args.year)
        source = f"VOC{args.year} {args.calib_split}"
    exclude = [n.strip() for n in args.exclude.split(",")]
    if args.runtime == "openvino":
        from ..quant.openvino_int8 import quantize_openvino

        report = quantize_openvino(onnx_path, out, images, exclude=exclude, keep_head_float=args.keep_head_float,
                                   keep_first_conv_float=args.keep_first_conv_float)
    else:
        report = quantize_model(onnx_path, out, images, per_channel=args.per_channel, method=args.method,
                                exclude=exclude, keep_head_float=args.keep_head_float,
                                keep_first_conv_float=args.keep_first_conv_float)
    size_in = onnx_path.stat().st_size / 1e6
    size_out = (out.stat().st_size + (out.with_suffix(".bin").stat().st_size if suffix == ".xml" else 0)) / 1e6
    method = "NNCF" if args.runtime == "openvino" else args.method
    print(f"quantized {onnx_path} -> {out}: {report.history['weights']} weights, {method} calibration on "
          f"{len(images)} images of {source}; {report.quantized_convs} convs INT8, {report.float_convs} float "
          f"({', '.join(report.float_nodes) or 'none kept float'}); {size_in:.2f} MB -> {size_out:.2f} MB")
    if args.amct_config:
        comment = (f"AMCT (amct_onnx) calibration config for {onnx_path.name}, written by ascend-slim quantize\n"
                   f"calibrate on the same {len(images)} images of {source}, letterboxed as eval does")
        write_amct_config(args.amct_config, report.float_nodes, batch_num=report.calibration_batches,
                          per_channel=args.per_channel, comment=comment)
        print(f"AMCT config -> {args.amct_config} (skip_layers: the float nodes; not run on hardware)")
    return 0
