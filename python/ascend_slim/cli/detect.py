"""``ascend-slim detect``: detect objects in images or video and draw them (and optionally write YOLO txt labels)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ..limits import STREAM_TIMEOUT_S, VID_STRIDE
from .args import add_model_args, detector_from_args, float_range, int_range

if TYPE_CHECKING:
    from ..videoio import VideoSource

frame_stride = int_range(*VID_STRIDE)
segment_seconds = int_range(0, 86_400)

NAME = "detect"
HELP = "detect objects and draw them into images or video"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, conf=0.25, iou=0.45, max_det=1000, threads=1)
    p.add_argument("--source", required=True, help="image file, folder or glob (with --image-set: the folder), "
                   "video file, rtsp/rtmp/http(s) stream URL or webcam index (0)")
    p.add_argument("--image-set", help="file of image ids (one per line, no suffix): reads <source>/<id>.jpg")
    p.add_argument("--classes", help="comma-separated class ids or names to keep")
    p.add_argument("--out", default="image_result", help="output folder (default image_result/); images that "
                   "share a file name (x.jpg, x.png) are written as x.jpg, x_2.jpg, ...")
    p.add_argument("--save-txt", action="store_true", help="also write labels/<image>.txt (class cx cy w h conf)")
    p.add_argument("--nosave", action="store_true", help="do not write the drawn images (e.g. for timing runs)")
    p.add_argument("--vid-stride", type=frame_stride, default=1, help="video: keep every N-th frame, 1-1000 (1)")
    p.add_argument("--segment", type=segment_seconds, default=60, help="streams and webcams: start a new output "
                   "file every SECONDS of output video, 0 = one file (default 60; each finished file plays on its own)")
    p.add_argument("--timeout", type=float_range(0.1, 3600, "seconds"), default=STREAM_TIMEOUT_S,
                   help=f"streams: give up on a URL that sends no video for this many seconds ({STREAM_TIMEOUT_S:g})")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.yolo_txt import format_yolo_lines
    from ..drawing import draw_detections
    from ..fileio import atomic_write_text, check_outputs
    from ..imageio import list_sources, unique_stems, write_image
    from ..videoio import video_source

    video = video_source(args.source) if args.image_set is None else None
    if video is not None:
        return _run_video(args, video)
    paths = list_sources(args.source, args.image_set)
    stems = unique_stems(paths)  # every image keeps its own output, also when two share a file name
    renamed = [(path, stem) for path, stem in zip(paths, stems) if stem != path.stem]
    if renamed:
        print(f"note: {len(renamed)} image(s) share a file name with an earlier one; their outputs get a numeric "
              f"suffix ({renamed[0][0]} -> {renamed[0][1]})", file=sys.stderr)
    classes = args.classes.split(",") if args.classes else None
    writes = not args.nosave or args.save_txt
    out = Path(args.out) if writes else None
    check_outputs([("--source", path) for path in paths], folders=[("--out", out)])
    with detector_from_args(args, classes=classes) as det:
        counts: Counter[str] = Counter()
        stream = det.stream(paths, workers=args.workers, keep_images=not args.nosave)
        for dets, stem in zip(tqdm(stream, total=len(paths), desc="detect", unit="img"), stems):
            if not args.nosave:
                write_image(out / f"{stem}.jpg", draw_detections(dets.image, dets))
            if args.save_txt:
                text = format_yolo_lines(dets.boxes, dets.class_ids, dets.image_shape, scores=dets.scores)
                atomic_write_text(out / "labels" / f"{stem}.txt", text)
            counts.update(dets.labels)
    where = f"; results in {out}/" if writes else "; nothing written (--nosave)"
    print(f"{len(paths)} image(s): {_summary(counts)}{where}")
    return 0


def _summary(counts: Counter[str]) -> str:
    """``4 person, 1 bus`` (most found first), or ``nothing``."""
    return ", ".join(f"{n} {name}" for name, n in counts.most_common()) or "nothing"


def _run_video(args: argparse.Namespace, video: VideoSource) -> int:
    """Detect on a video file, stream or webcam: ``<out>/<name>.mp4`` (streams: ``<name>_000.mp4``, ... every
    ``--segment`` seconds) and ``<out>/labels/<name>_<frame>.txt``. Ctrl-C and the end of a stream close the
    video properly; a truncated file keeps what decoded, with a warning naming the frame where decoding stopped."""
    from contextlib import closing

    from tqdm import tqdm

    from ..data.yolo_txt import format_yolo_lines
    from ..drawing import draw_detections
    from ..fileio import atomic_write_text, check_outputs
    from ..videoio import VideoReader, VideoWriter

    if args.backend == "mindx" and str(video.uri).lower().startswith(("rtsp://", "rtsps://")):
        return _run_mindx_video(args, video)
    writes = not args.nosave or args.save_txt
    out = Path(args.out) if writes else None
    check_outputs([("--source", video.uri)] if video.kind == "file" else [], folders=[("--out", out)])
    classes = args.classes.split(",") if args.classes else None
    counts: Counter[str] = Counter()
    frames, interrupted = 0, False
    # the source first: an unreachable URL fails before the model loads
    with VideoReader(video, args.vid_stride, args.timeout) as reader, detector_from_args(args, classes=classes) as det:
        segment = round(reader.fps * args.segment) if video.live else 0
        sink = None if args.nosave else VideoWriter(out / f"{video.name}.mp4", reader.fps, reader.size, segment)
        bar = tqdm(total=reader.expected_frames, desc=f"detect {video.name}", unit="frame")
        try:
            with closing(det.stream(reader, workers=args.workers)) as results:
                for index, frame, dets in results:
                    if sink is not None:
                        sink.write(draw_detections(frame, dets))
                    if args.save_txt:
                        text = format_yolo_lines(dets.boxes, dets.class_ids, dets.image_shape, scores=dets.scores)
                        atomic_write_text(out / "labels" / f"{video.name}_{index}.txt", text)
                    counts.update(dets.labels)
                    frames += 1
                    bar.update()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            written = sink.close() if sink is not None else []
    where = f"; video in {', '.join(map(str, written))}" if written else ""
    where += f"; labels in {out / 'labels'}/" if args.save_txt and frames else ""
    ended = " (the stream ended)" if video.live and not interrupted else ""
    print(f"{frames} frame(s) of {video.uri}{ended}: {_summary(counts)}{where or '; nothing written'}")
    if interrupted:
        print(f"interrupted after {frames} frame(s); outputs so far are complete and playable", file=sys.stderr)
        return 130
    stop = reader.describe_stop()
    if stop:
        print(f"warning: {stop}; the {frames} frame(s) before it were processed", file=sys.stderr)
    return 0


def _run_mindx_video(args: argparse.Namespace, video: VideoSource) -> int:
    """``--backend mindx`` on an RTSP camera: the video pipeline on the device (pull, VDEC decode, resize,
    inference and the SDK's YOLOv5 postprocess). The frames stay on the device, so it writes labels
    (``--save-txt``) but no drawn video; the host opens the URL once, to fail fast and learn the frame size."""
    from ..ascend.postprocess_cfg import Thresholds
    from ..data.yolo_txt import format_yolo_lines
    from ..detector import class_ids
    from ..errors import AscendSlimError
    from ..fileio import atomic_write_text, check_outputs
    from ..runtime.factory import parse_device
    from ..runtime.mindx_backend import MindXVideoRoute
    from ..videoio import frame_shape

    kind, device_id = parse_device(args.device)
    if kind == "cuda":
        raise AscendSlimError(f"--backend mindx runs on an Ascend device: use --device npu[:N], not {args.device}")
    if args.weights is None or Path(args.weights).suffix.lower() != ".om":
        raise AscendSlimError("--backend mindx needs an Ascend .om model (--weights models/yolov5/model.om)")
    out = Path(args.out) if args.save_txt else None
    check_outputs([("--weights", args.weights)], folders=[("--out", out)])
    shape = frame_shape(video, args.timeout)
    if not args.nosave:
        print("note: the MindX video pipeline keeps the frames on the device: no drawn video is written "
              "(--save-txt writes the labels)", file=sys.stderr)
    thresholds = Thresholds(args.conf_thres, args.conf_thres, args.iou_thres)
    counts: Counter[str] = Counter()
    frames, interrupted = 0, False
    with MindXVideoRoute(args.weights, str(video.uri), thresholds, device_id, args.timeout) as route:
        names = route.meta.names
        keep = set(class_ids(names, args.classes.split(","))) if args.classes else None
        try:
            for index, dets in route.frames():
                if index % args.vid_stride:
                    continue
                if keep is not None:
                    dets = dets[[int(c) in keep for c in dets[:, 5]]]
                if args.save_txt:
                    text = format_yolo_lines(dets[:, :4], dets[:, 5].astype(int), shape, scores=dets[:, 4])
                    atomic_write_text(out / "labels" / f"{video.name}_{index}.txt", text)
                counts.update(names[c] for c in dets[:, 5].astype(int))
                frames += 1
        except KeyboardInterrupt:
            interrupted = True
    where = f"; labels in {out / 'labels'}/" if args.save_txt and frames else "; nothing written"
    print(f"{frames} frame(s) of {video.uri} on the device (MindX video pipeline): {_summary(counts)}{where}")
    return 130 if interrupted else 0
