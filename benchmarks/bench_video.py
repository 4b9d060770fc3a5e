"""Frames/s of yolov5n at 640 (rectangular letterbox, single-threaded inferences, one worker per core) on a video
versus the same frames as images, pipelined (`Detector.stream`), measured side by side in one run.

The clip is built from shared VOC test photos (resized to the clip size) with OpenCV's VideoWriter (MPEG-4 Part 2,
.mp4); its decoded frames are also written as JPEG files (quality 95) and kept in memory. Variants, run in
alternation for --repeats passes (medians reported):

* video: `Detector.stream("clip.mp4")`: decode in the reader thread + preprocess + inference + postprocess;
* images: `Detector.stream(jpeg_paths)`: the images-only pipeline (JPEG decode in the workers);
* frames in memory: `Detector.stream(frames)`: no decoding at all (the upper bound).

Target: video >= 0.9x images (pipelined, the same frames). On a shared machine the passes vary a lot: the best
pass of each variant (least disturbed) is reported beside the median.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import cv2
from _common import parser, voc_test_images, write_json, yolov5n_onnx

from ascend_slim import Detector


def build_clip(folder: Path, frames: int, size: tuple[int, int], fps: float = 25.0) -> tuple[Path, list[Path], list]:
    """The clip, its decoded frames as JPEG files and in memory."""
    clip = folder / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for path in voc_test_images(frames):
        writer.write(cv2.resize(cv2.imread(str(path)), size, interpolation=cv2.INTER_AREA))
    writer.release()
    cap, decoded = cv2.VideoCapture(str(clip)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(frame)
    cap.release()
    jpegs = []
    for i, frame in enumerate(decoded):
        jpegs.append(folder / f"frame_{i:04d}.jpg")
        cv2.imwrite(str(jpegs[-1]), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return clip, jpegs, decoded


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=120, help="frames in the clip (VOC test photos; default 120)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--repeats", type=int, default=5, help="timed passes per variant; the median is reported")
    p.add_argument("--workers", type=int, default=None, help="images in flight (default: one per core)")
    args = p.parse_args()
    det = Detector(yolov5n_onnx(640, dynamic=True), num_threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        clip, jpegs, frames = build_clip(Path(tmp), args.frames, (args.width, args.height))
        n = len(frames)
        variants = {
            "video (decode in the reader thread)": lambda: sum(1 for _ in det.stream(clip, workers=args.workers)),
            "images (JPEG files)": lambda: sum(1 for _ in det.stream(jpegs, workers=args.workers)),
            "frames in memory (no decode)": lambda: sum(1 for _ in det.stream(frames, workers=args.workers)),
        }
        for run in variants.values():  # warm-up, and every variant sees every frame
            assert run() == n
        walls: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                walls[name].append(time.perf_counter() - start)
    fps = {name: n / statistics.median(w) for name, w in walls.items()}
    best = {name: n / min(w) for name, w in walls.items()}
    print(f"yolov5n 640 rect, {n} frames of {args.width}x{args.height}, pipelined, {args.repeats} passes each")
    print(f"  {'':<40}{'median':>8}{'best':>8} frames/s")
    for name in walls:
        print(f"  {name:<40}{fps[name]:8.1f}{best[name]:8.1f}")
    ratios = {}
    for label, figures in (("median", fps), ("best", best)):
        video, images, memory = figures.values()
        ratios[label] = {"video_vs_images": video / images, "video_vs_memory": video / memory}
        print(f"  {label}: video / images {video / images:.3f} (target >= 0.9), video / frames in memory "
              f"{video / memory:.3f}")
    write_json(args.json, {"frames": n, "size": [args.width, args.height], "repeats": args.repeats,
                           "workers": args.workers or "one per core", "frames_per_s_median": fps,
                           "frames_per_s_best": best, "walls_s": walls, "ratios": ratios})


if __name__ == "__main__":
    main()
