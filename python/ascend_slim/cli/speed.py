"""``ascend-slim speed``: wall-clock timing of a model, stage by stage, sequential and pipelined."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .args import add_model_args, detector_from_args, iteration_count, warmup_count
from .detect import frame_stride

NAME = "speed"
HELP = "measure preprocess / inference / postprocess wall-clock time"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, conf=0.25, iou=0.45, max_det=1000, threads=0)
    p.add_argument("--source", help="image file, folder or glob (with --image-set: the folder), or a video file "
                   "or stream (then: pipelined frames/s, video vs images only); default: a synthetic 1280x720 JPEG")
    p.add_argument("--vid-stride", type=frame_stride, default=1, help="video: time every N-th frame, 1-1000 (1)")
    p.add_argument("--image-set", help="file of image ids: reads <source>/<id>.jpg")
    p.add_argument("--warmup", type=warmup_count, default=5, help="untimed runs first, 0-10000 (default 5)")
    p.add_argument("--iters", type=iteration_count, default=None,
                   help="timed images, 1-1000000 (default: each image once; video: every frame, streams: 100)")
    p.add_argument("--pipelined", action="store_true",
                   help="also time the pipelined mode (--workers images in flight, single-threaded inferences)")
    p.add_argument("--json", help="write the report as JSON to this file")


def run(args: argparse.Namespace) -> int:
    import tempfile
    from contextlib import ExitStack

    from ..fileio import atomic_write_text, check_outputs
    from ..imageio import list_sources
    from ..speed import format_report, measure_speed, write_test_image
    from ..videoio import video_source

    video = video_source(args.source) if args.source and args.image_set is None else None
    if video is not None:
        return _run_video(args, video)
    sources = list_sources(args.source, args.image_set) if args.source else []
    check_outputs([("--weights", args.weights), ("--image-set", args.image_set),
                   *(("--source", path) for path in sources)], files=[("--json", args.json)])
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        det = stack.enter_context(detector_from_args(args, streams=1))
        stream_det = stack.enter_context(detector_from_args(args, num_threads=1)) if args.pipelined else None
        if sources:
            paths, iters = sources, args.iters
        else:
            paths, iters = [write_test_image(Path(tmp) / "synthetic_1280x720.jpg")], args.iters or 50
            print("no --source given: timing a synthetic 1280x720 JPEG")
        report = measure_speed(det, paths, warmup=args.warmup, iters=iters, stream_det=stream_det,
                               workers=args.workers)
    print(format_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def _run_video(args: argparse.Namespace, video) -> int:
    """``speed --source clip.mp4``: pipelined video frames/s (single-threaded inferences) beside images only."""
    from ..fileio import atomic_write_text, check_outputs
    from ..speed import format_video_report, measure_video_speed

    check_outputs([("--weights", args.weights)] + ([("--source", video.uri)] if video.kind == "file" else []),
                  files=[("--json", args.json)])
    with detector_from_args(args, num_threads=args.threads or 1) as det:
        report = measure_video_speed(det, video, workers=args.workers, vid_stride=args.vid_stride,
                                     max_frames=args.iters, warmup=args.warmup)
    print(format_video_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0
