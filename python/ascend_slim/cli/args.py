"""Flag types and option groups shared by several subcommands, and the Detector they describe."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from ..limits import BATCH_SIZE, IMAGE_SIZE, ONNX_OPSET
from ..runtime.factory import BACKENDS


def int_range(low: int, high: int) -> Callable[[str], int]:
    """A flag type: an integer in ``[low, high]``; anything else is a one-line usage error."""
    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie in [{low}, {high}], got {text}")
        return value

    return integer


def float_range(low: float, high: float, name: str) -> Callable[[str], float]:
    """A flag type: a float in ``[low, high]`` (argparse names it ``name`` in its messages)."""
    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie in [{low:g}, {high:g}], got {text}")
        return value

    parse.__name__ = name
    return parse


fraction = float_range(0.0, 1.0, "fraction")  # a float in [0, 1]


# Ranges of the numeric flags (the library checks the shared ones, ``limits``): beyond them a run cannot succeed
# or makes no sense (NMS keeps at most 30,000 candidates).
image_size = int_range(*IMAGE_SIZE)
detections_per_image = int_range(1, 30_000)
thread_count = int_range(0, 256)
worker_count = int_range(1, 256)
batch_size = int_range(*BATCH_SIZE)
onnx_opset = int_range(*ONNX_OPSET)
iteration_count = int_range(1, 1_000_000)
warmup_count = int_range(0, 10_000)
channel_multiple = int_range(1, 256)  # --round-to: 8 (CPU SIMD) or 16 (Ascend cube unit)


def input_size(flag: int | None, weights, default: int) -> tuple[int, str]:
    """The input size to build ``weights`` (.pt) for, and why: ``--img`` when given, else the size an ascend-slim
    checkpoint was saved for (a slim run's final.pt: its chosen size), else ``default``."""
    from ..model.checkpoint import saved_img_size

    if flag:
        return flag, "--img"
    saved = saved_img_size(weights)
    return (saved, f"saved in {weights}") if saved else (default, "the default; the checkpoint records no size")


def add_model_args(p: argparse.ArgumentParser, conf: float, iou: float, max_det: int, threads: int) -> None:
    """The flags that describe a :class:`~ascend_slim.Detector` (model, thresholds, backend, device, threads)."""
    p.add_argument("--weights", help="model: .pt (official or ascend-slim), .onnx or .om "
                   "(default: $ASCEND_SLIM_WEIGHTS, else the official yolov5s.pt, downloaded once)")
    p.add_argument("--img", "--img-size", dest="img", type=image_size, default=None,
                   help="square input size in pixels, 32-4096 (default: the model's own; a .pt's saved size)")
    p.add_argument("--conf-thres", type=fraction, default=conf, help=f"confidence threshold (default {conf})")
    p.add_argument("--iou-thres", type=fraction, default=iou, help=f"NMS IoU threshold (default {iou})")
    p.add_argument("--max-det", type=detections_per_image, default=max_det,
                   help=f"detections per image, 1-30000 ({max_det})")
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda[:N] (onnxruntime) or npu[:N] (Ascend .om)")
    p.add_argument("--threads", type=thread_count, default=threads,
                   help=f"threads per inference (onnxruntime, OpenVINO), 0-256, 0 = all cores (default {threads})")
    p.add_argument("--workers", type=worker_count, default=None,
                   help="images in flight (default: one per core with onnxruntime and OpenVINO, else 2; OpenVINO "
                   "runs one stream per worker)")


def detector_from_args(args: argparse.Namespace, **overrides: object):
    """The Detector that :func:`add_model_args` flags describe, set up for ``stream`` with ``--workers`` images in
    flight; ``overrides`` replace or add keyword arguments (``streams=1`` for one image at a time)."""
    from ..detector import Detector

    options = dict(weights=args.weights, backend=args.backend, img_size=args.img, conf_thres=args.conf_thres,
                   iou_thres=args.iou_thres, max_det=args.max_det, device=args.device,
                   num_threads=args.threads or None, streams=args.workers or os.cpu_count())
    options.update(overrides)
    return Detector(**options)
