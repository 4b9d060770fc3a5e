"""``speed``: wall-clock timing of a Detector, stage by stage, sequential and pipelined."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import closing
from itertools import cycle, islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .detector import Detector
from .errors import AscendSlimError
from .imageio import write_image
from .profiling import STAGES
from .videoio import VideoReader, VideoSource


def measure_speed(det: Detector, paths: Sequence[Path], warmup: int = 5, iters: int | None = None,
                  stream_det: Detector | None = None, workers: int | None = None) -> dict:
    """Time ``det`` on ``paths`` (cycled to ``iters`` images). All times are ``perf_counter`` wall clock.

    Sequential mode runs decode, preprocess, inference and postprocess one after another per image and
    reports each stage's p50/p90. With ``stream_det`` (the same model, usually with single-threaded inference)
    the pipelined mode (``Detector.stream`` with ``workers``) is timed too and reported as throughput.
    """
    if not paths:
        raise AscendSlimError("speed needs at least one image")
    if warmup < 0:
        raise AscendSlimError(f"--warmup must be >= 0, got {warmup}")
    n = iters or len(paths)
    det.predict(paths[0])
    for path in islice(cycle(paths), warmup):
        det.predict(path)

    per_image = []
    with det.timing() as times:
        start = time.perf_counter()
        for path in tqdm(list(islice(cycle(paths), n)), desc="speed (sequential)", unit="img"):
            t0 = time.perf_counter()
            det.predict(path)
            per_image.append(time.perf_counter() - t0)
        wall = time.perf_counter() - start
    stages = times.summary()
    e2e = np.asarray(per_image) * 1e3
    report = {
        "weights": str(det.weights), "backend": det.backend.name, "img_size": list(det.img_size),
        "letterbox": "rect" if det.rect else "square",
        "images": n,
        "sequential": {
            "stages": {s: stages[s] for s in STAGES if s in stages},
            "end_to_end": {"p50_ms": float(np.percentile(e2e, 50)), "p90_ms": float(np.percentile(e2e, 90))},
            "images_per_s": n / wall,
        },
    }
    if stream_det is not None:
        list(stream_det.stream(islice(cycle(paths), 2 * (workers or 2)), workers=workers))  # warm-up
        start = time.perf_counter()
        for _ in tqdm(stream_det.stream(islice(cycle(paths), n), workers=workers), total=n,
                      desc="speed (pipelined)", unit="img"):
            pass
        wall = time.perf_counter() - start
        report["pipelined"] = {"images_per_s": n / wall, "workers": workers or "auto",
                               "threads_per_inference": stream_det.num_threads or "default"}
        report["pipelined_speedup"] = report["pipelined"]["images_per_s"] / report["sequential"]["images_per_s"]
    return report


LIVE_SPEED_FRAMES = 100  # frames timed from a stream or webcam when no count is given


def measure_video_speed(det: Detector, source: VideoSource, workers: int | None = None, vid_stride: int = 1,
                        max_frames: int | None = None, warmup: int = 5) -> dict:
    """Pipelined frames/s of ``det`` on a video, end to end: decoding in the reader thread, preprocess, inference
    and postprocess (``Detector.stream(video)``), beside the images-only figure: the same frames, decoded
    beforehand, through the same pipeline (``Detector.stream(frames)``). Wall clock, one pass each. A stream or
    webcam is read twice (its frames then differ) and for ``max_frames`` frames, default 100."""
    if source.live and max_frames is None:
        max_frames = LIVE_SPEED_FRAMES
    with VideoReader(source, vid_stride) as reader:
        frames = [frame for _, frame in islice(reader, max_frames)]
        fps, size = reader.fps, reader.size
    list(det.stream(islice(cycle(frames), max(warmup, 1)), workers=workers))  # warm-up
    start = time.perf_counter()
    for _ in tqdm(det.stream(frames, workers=workers), total=len(frames), desc="speed (images only)", unit="frame"):
        pass
    images_wall = time.perf_counter() - start
    start = time.perf_counter()
    with VideoReader(source, vid_stride) as reader, closing(det.stream(reader, workers=workers)) as results:
        n = sum(1 for _ in tqdm(islice(results, len(frames)), total=len(frames), desc="speed (video)", unit="frame"))
    video_wall = time.perf_counter() - start
    video, images = n / video_wall, len(frames) / images_wall
    return {
        "weights": str(det.weights), "backend": det.backend.name, "img_size": list(det.img_size),
        "letterbox": "rect" if det.rect else "square",
        "video": {"source": str(source.uri), "frames": n, "size": list(size), "fps": fps, "vid_stride": vid_stride,
                  "workers": workers or "auto", "threads_per_inference": det.num_threads or "default",
                  "frames_per_s": video, "images_only_frames_per_s": images, "video_vs_images": video / images},
    }


def format_video_report(report: dict) -> str:
    """A terminal summary of :func:`measure_video_speed`."""
    v = report["video"]
    return "\n".join([
        f"{report['weights']} on {report['backend']}, {v['frames']} frames of {v['source']} "
        f"({v['size'][0]}x{v['size'][1]}, --vid-stride {v['vid_stride']}), pipelined, wall clock",
        f"video end to end (decode + preprocess + inference + postprocess): {v['frames_per_s']:.1f} frames/s",
        f"images only (the same frames, decoded beforehand):                {v['images_only_frames_per_s']:.1f} "
        f"frames/s",
        f"video / images only: {v['video_vs_images']:.2f}",
    ])


def write_test_image(path: Path, size: tuple[int, int] = (720, 1280)) -> Path:
    """A deterministic photo-like JPEG (smooth gradients plus noise) for timing without data."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 12, (h, w, 3))
    img = np.stack([xx / w * 255, yy / h * 255, (xx + yy) / (w + h) * 255], axis=-1) + noise
    write_image(path, np.clip(img, 0, 255).astype(np.uint8))
    return path


def format_report(report: dict) -> str:
    """A terminal table of the speed report."""
    seq = report["sequential"]
    size = f"{report['img_size'][1]}x{report['img_size'][0]}"
    size = f"within {size} (rectangular letterbox)" if report["letterbox"] == "rect" else size
    lines = [f"{report['weights']} on {report['backend']}, {size}, {report['images']} images (wall clock)",
             f"{'stage':<12}{'p50 ms':>10}{'p90 ms':>10}"]
    for stage, s in seq["stages"].items():
        lines.append(f"{stage:<12}{s['p50_ms']:>10.2f}{s['p90_ms']:>10.2f}")
    lines.append(f"{'end-to-end':<12}{seq['end_to_end']['p50_ms']:>10.2f}{seq['end_to_end']['p90_ms']:>10.2f}")
    lines.append(f"sequential: {seq['images_per_s']:.1f} images/s")
    if "pipelined" in report:
        lines.append(f"pipelined:  {report['pipelined']['images_per_s']:.1f} images/s "
                     f"({report['pipelined_speedup']:.2f}x sequential)")
    return "\n".join(lines)
