"""The ``ascend-slim`` command line (also ``python -m ascend_slim``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import AscendSlimError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def _add_model_args(p: argparse.ArgumentParser, conf: float, iou: float, max_det: int, threads: int) -> None:
    p.add_argument("--weights", help="model: .pt (official or ascend-slim), .onnx or .om "
                   "(default: $ASCEND_SLIM_WEIGHTS, else the official yolov5s.pt, downloaded once)")
    p.add_argument("--img", "--img-size", dest="img", type=_positive_int, default=None,
                   help="square input size in pixels (default: the model's own; 640 for .pt)")
    p.add_argument("--conf-thres", type=_fraction, default=conf, help=f"confidence threshold (default {conf})")
    p.add_argument("--iou-thres", type=_fraction, default=iou, help=f"NMS IoU threshold (default {iou})")
    p.add_argument("--max-det", type=_positive_int, default=max_det, help=f"detections per image ({max_det})")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "torch", "acl", "mindx"))
    p.add_argument("--device", default="cpu", help="cpu (default), cuda[:N] (onnxruntime) or npu[:N] (Ascend .om)")
    p.add_argument("--threads", type=int, default=threads,
                   help=f"onnxruntime threads per inference, 0 = all cores (default {threads})")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="images in flight (default: one per core with onnxruntime, else 2)")


def _detector(args: argparse.Namespace, **overrides: object):
    from .detector import Detector

    options = dict(weights=args.weights, backend=args.backend, img_size=args.img, conf_thres=args.conf_thres,
                   iou_thres=args.iou_thres, max_det=args.max_det, device=args.device,
                   num_threads=args.threads or None)
    options.update(overrides)
    return Detector(**options)


def _cmd_detect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data.yolo_txt import format_yolo_lines
    from .drawing import draw_detections
    from .fileio import atomic_write_text, check_output_dir
    from .imageio import list_sources, write_image

    paths = list_sources(args.source, args.image_set)
    classes = args.classes.split(",") if args.classes else None
    out = check_output_dir(args.out)
    with _detector(args, classes=classes) as det:
        counts: dict[str, int] = {}
        stream = det.stream(paths, workers=args.workers, keep_images=True)
        for dets in tqdm(stream, total=len(paths), desc="detect", unit="img"):
            src = Path(dets.source)
            write_image(out / f"{src.stem}.jpg", draw_detections(dets.image, dets))
            if args.save_txt:
                text = format_yolo_lines(dets.boxes, dets.class_ids, dets.image_shape, scores=dets.scores)
                atomic_write_text(out / "labels" / f"{src.stem}.txt", text)
            for name in dets.labels:
                counts[name] = counts.get(name, 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "nothing"
    print(f"{len(paths)} image(s): {summary}; results in {out}/")
    return 0


def _cmd_speed(args: argparse.Namespace) -> int:
    import tempfile
    from contextlib import ExitStack

    from .fileio import atomic_write_text, check_output_dir
    from .imageio import list_sources
    from .speed import format_report, measure_speed, write_test_image

    if args.json:
        check_output_dir(Path(args.json).parent, "--json folder")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        det = stack.enter_context(_detector(args))
        stream_det = stack.enter_context(_detector(args, num_threads=1)) if args.pipelined else None
        if args.source:
            paths, iters = list_sources(args.source, args.image_set), args.iters
        else:
            paths, iters = [write_test_image(Path(tmp) / "synthetic_1280x720.jpg")], args.iters or 50
            print("no --source given: timing a synthetic 1280x720 JPEG")
        report = measure_speed(det, paths, warmup=args.warmup, iters=iters, stream_det=stream_det,
                               workers=args.workers)
    print(format_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx
    from .fileio import check_output_dir
    from .model.checkpoint import load_weights
    from .weights import resolve_weights

    weights = resolve_weights(args.weights)
    if weights.suffix.lower() != ".pt":
        raise AscendSlimError(f"export needs a .pt checkpoint, got {weights.name}")
    out = Path(args.output or weights.with_suffix(".onnx").name)
    check_output_dir(out.parent)
    model, _ = load_weights(weights)
    if args.classes:
        from .classes import resolve_class_set
        from .model.remap import remap_classes

        model = remap_classes(model, resolve_class_set(args.classes))
    export_onnx(model, out, img_size=args.img, batch=args.batch, opset=args.opset, head=args.head,
                dynamic=args.dynamic)
    shape = "dynamic size" if args.dynamic else f"{args.img}x{args.img}"
    print(f"exported {weights.name} -> {out} ({args.head} head, {shape}, opset {args.opset})")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation.runner import run_eval

    return run_eval(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ascend-slim",
        description="Prune, compress and deploy YOLOv5 detectors: Ascend 310 (ATC, MindX, pyACL) and onnxruntime.",
        epilog="`ascend-slim COMMAND --help` lists a command's flags.")
    parser.add_argument("--version", action="version", version=f"ascend-slim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("detect", help="detect objects and draw them into images")
    _add_model_args(p, conf=0.25, iou=0.45, max_det=1000, threads=1)
    p.add_argument("--source", required=True, help="image file, folder or glob (with --image-set: the folder)")
    p.add_argument("--image-set", help="file of image ids (one per line, no suffix): reads <source>/<id>.jpg")
    p.add_argument("--classes", help="comma-separated class ids or names to keep")
    p.add_argument("--out", default="image_result", help="output folder (default image_result/)")
    p.add_argument("--save-txt", action="store_true", help="also write labels/<image>.txt (class cx cy w h conf)")
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser("speed", help="measure preprocess / inference / postprocess wall-clock time")
    _add_model_args(p, conf=0.25, iou=0.45, max_det=1000, threads=0)
    p.add_argument("--source", help="image file, folder or glob (with --image-set: the folder); "
                   "default: a synthetic 1280x720 JPEG")
    p.add_argument("--image-set", help="file of image ids: reads <source>/<id>.jpg")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    p.add_argument("--iters", type=_positive_int, default=None, help="timed images (default: each image once)")
    p.add_argument("--pipelined", action="store_true",
                   help="also time the pipelined mode (--workers images in flight, single-threaded inferences)")
    p.add_argument("--json", help="write the report as JSON to this file")
    p.set_defaults(func=_cmd_speed)

    p = sub.add_parser("eval", help="score a model (or detection files) on Pascal VOC")
    _add_model_args(p, conf=0.001, iou=0.6, max_det=300, threads=1)
    from .evaluation.runner import add_eval_args

    add_eval_args(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("export", help="export a .pt checkpoint to ONNX (opset 11, static shapes)")
    p.add_argument("--weights", help="checkpoint .pt (official Ultralytics or ascend-slim)")
    p.add_argument("--img", "--img-size", dest="img", type=_positive_int, default=640)
    p.add_argument("--batch", "--batch-size", dest="batch", type=_positive_int, default=1)
    p.add_argument("--opset", type=int, default=11)
    p.add_argument("--head", choices=("raw", "decoded"), default="raw",
                   help="raw: the three [1,3,h,w,5+nc] logits (Ascend); decoded: one [1,K,5+nc] output")
    p.add_argument("--classes", choices=("voc", "coco"), help="remap the model to this class set first "
                   "(a COCO model becomes an exact 20-class VOC model)")
    p.add_argument("--dynamic", action="store_true",
                   help="variable height/width for onnxruntime (rectangular letterbox); Ascend needs static")
    p.add_argument("-o", "--output", help="output .onnx path (default: <weights name>.onnx)")
    p.set_defaults(func=_cmd_export)

    from .ascend.commands import register

    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AscendSlimError as exc:
        print(f"ascend-slim {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # permissions, full disk, a file where a folder should be, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"ascend-slim {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
