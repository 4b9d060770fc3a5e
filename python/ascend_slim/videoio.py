"""Video sources and outputs: files, stream URLs and webcams decoded in a reader thread (OpenCV's FFmpeg
backend), and annotated video written so that it is always a properly closed, playable container."""

from __future__ import annotations

import os
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from .errors import AscendSlimError
from .limits import STREAM_TIMEOUT_S, VID_STRIDE, check_range

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".flv", ".ts",
                  ".h264", ".264", ".h265", ".265", ".hevc")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
DEFAULT_FPS = 30.0  # written when a source reports no frame rate (some webcams and streams)
OUTPUT_FOURCC = "mp4v"  # MPEG-4 Part 2 in .mp4: the encoder every OpenCV FFmpeg build has (no H.264 in the wheels)

_END = object()
# FFmpeg reads its log level once, when OpenCV first uses it, so it is set on import: every video a process opens
# after importing ascend_slim is quiet (errors are reported as one line instead). A value the user set wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


class VideoReadError(AscendSlimError):
    """A video source that cannot be opened or yields no frames."""


@dataclass(frozen=True)
class VideoSource:
    """A video ``--source``: ``kind`` is ``file``, ``stream`` (URL) or ``webcam`` (``uri`` is then its index)."""

    uri: str | int
    kind: str
    name: str  # the stem of its outputs

    @property
    def live(self) -> bool:
        return self.kind != "file"


def video_source(source: str | Path | int) -> VideoSource | None:
    """The video that ``source`` names (a video file by suffix, an rtsp/rtmp/http(s) URL or a webcam index), or
    None for an image source (image file, folder, glob)."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit() and not Path(source).exists()):
        return VideoSource(int(source), "webcam", f"webcam{int(source)}")
    text = str(source)
    url = urlsplit(text)
    if url.scheme.lower() in STREAM_SCHEMES and url.netloc:
        stem = Path(url.path).stem or url.hostname or "stream"
        return VideoSource(text, "stream", re.sub(r"[^\w.-]", "_", stem))
    if Path(text).suffix.lower() in VIDEO_SUFFIXES:
        return VideoSource(text, "file", Path(text).stem)
    return None


def quiet_opencv() -> None:
    """Keep OpenCV's own warnings (e.g. "can't open camera by index") off stderr: they are reported as one line."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def open_capture(source: VideoSource, timeout_s: float = STREAM_TIMEOUT_S) -> cv2.VideoCapture:
    """An opened ``cv2.VideoCapture`` for ``source``; raises :class:`VideoReadError` with one line otherwise."""
    quiet_opencv()
    if source.kind == "webcam":
        cap = cv2.VideoCapture(source.uri)
        if not cap.isOpened():
            raise VideoReadError(f"cannot open webcam {source.uri}: no camera at that index (check /dev/video*)")
        return cap
    if source.kind == "file" and not Path(source.uri).is_file():
        raise VideoReadError(f"video not found: {source.uri}")
    ms = int(timeout_s * 1000)
    cap = cv2.VideoCapture(str(source.uri), cv2.CAP_FFMPEG,
                           [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    if not cap.isOpened():
        if source.kind == "stream":
            raise VideoReadError(f"cannot open stream {source.uri}: unreachable, or no video within {timeout_s:g} s "
                                 "(check the address, the path and that the camera or server is up)")
        raise VideoReadError(f"cannot open video {source.uri}: not a video OpenCV's FFmpeg reads, or its "
                             "container is truncated or corrupt (header or index missing)")
    return cap


def frame_shape(source: VideoSource, timeout_s: float = STREAM_TIMEOUT_S) -> tuple[int, int]:
    """``(height, width)`` of ``source``'s frames, from opening it once (fails like :func:`open_capture`)."""
    cap = open_capture(source, timeout_s)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    finally:
        cap.release()


class VideoReader:
    """Decodes a :class:`VideoSource` in a background thread, keeping every ``stride``-th frame.

    Iterating yields ``(frame_index, bgr_frame)`` in order (``frame_index`` counts every decoded frame from 0),
    and raises :class:`VideoReadError` when the source produced no frame at all. Up to ``buffer`` frames wait
    decoded. ``stopped_at`` is set when a file ended before the frame count its header declares (truncated
    or corrupt). ``close`` (or leaving the ``with`` block) stops the thread and releases the capture.
    """

    def __init__(self, source: VideoSource | str | Path | int, stride: int = 1, timeout_s: float = STREAM_TIMEOUT_S,
                 buffer: int = 8) -> None:
        check_range("vid_stride", stride, VID_STRIDE)
        if not isinstance(source, VideoSource):
            found = video_source(source)
            if found is None:
                raise AscendSlimError(f"{source} is not a video file ({', '.join(VIDEO_SUFFIXES)}), a stream URL "
                                      f"({', '.join(STREAM_SCHEMES)}) or a webcam index")
            source = found
        self.source, self.stride = source, stride
        self._cap = open_capture(source, timeout_s)
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if np.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not source.live else 0
        self.frame_count: int | None = count if count > 0 else None  # what the file's header declares
        self.decoded = 0  # frames decoded so far (kept or skipped)
        self.stopped_at: int | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, buffer))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def expected_frames(self) -> int | None:
        """Frames that iteration will yield if the file is whole (None for streams and webcams)."""
        return None if self.frame_count is None else -(-self.frame_count // self.stride)

    def _read(self) -> None:
        try:
            index = 0
            while not self._stop.is_set():
                keep = index % self.stride == 0
                ok, frame = self._cap.read() if keep else (self._cap.grab(), None)
                if not ok:
                    break
                self.decoded = index + 1
                if keep and not self._put((index, frame)):
                    return
                index += 1
            if self.frame_count is not None and self.decoded < self.frame_count and not self._stop.is_set():
                self.stopped_at = self.decoded
        except BaseException as exc:  # handed to the consumer
            self._error = exc
        self._put(_END)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._thread is not None:
            raise AscendSlimError(f"video {self.source.uri} is already being read: open a new VideoReader")
        self._thread = threading.Thread(target=self._read, name=f"video-reader-{self.source.name}", daemon=True)
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is _END:
                break
            yield item
        if self._error is not None:
            raise self._error
        if self.decoded == 0:
            what = "stream" if self.source.live else "video"
            raise VideoReadError(f"{what} {self.source.uri} has no decodable frames")

    def describe_stop(self) -> str | None:
        """One line naming where decoding of a truncated or corrupt file stopped; None when it did not."""
        if self.stopped_at is None:
            return None
        return (f"decoding {self.source.uri} stopped at frame {self.stopped_at} of the {self.frame_count} its "
                f"header declares (the file is truncated or corrupt)")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoWriter:
    """Frames of one size into ``path`` (``.mp4``, MPEG-4 Part 2) at ``fps``.

    Each file is written under a hidden temporary name and renamed when it is closed, so every output that
    exists is a finished, playable container (also after Ctrl-C). ``segment_frames`` > 0 closes the file every
    that many frames and starts the next: ``<stem>_000.mp4``, ``<stem>_001.mp4``, ... (for endless streams).
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], segment_frames: int = 0) -> None:
        self.path, self.fps, self.size, self.segment_frames = Path(path), fps, size, segment_frames
        self.written: list[Path] = []  # finished files
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._target: Path | None = None
        self._partial: Path | None = None

    def _open(self) -> None:
        quiet_opencv()
        stem = self.path.stem
        if self.segment_frames:
            stem = f"{stem}_{len(self.written):03d}"
        self._target = self.path.with_name(f"{stem}{self.path.suffix}")
        self._partial = self.path.with_name(f".{stem}.partial{self.path.suffix}")
        self._target.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(self._partial), cv2.VideoWriter_fourcc(*OUTPUT_FOURCC), self.fps, self.size)
        if not writer.isOpened():
            self._partial.unlink(missing_ok=True)
            raise AscendSlimError(f"cannot write video {self._target}: OpenCV's FFmpeg has no {OUTPUT_FOURCC} "
                                  f"encoder for {self.size[0]}x{self.size[1]} at {self.fps:g} fps")
        self._writer = writer

    def write(self, frame: np.ndarray) -> None:
        if frame.shape[1::-1] != self.size:
            raise AscendSlimError(f"frame of {frame.shape[1]}x{frame.shape[0]} does not match the video's "
                                  f"{self.size[0]}x{self.size[1]} (the source changed resolution)")
        if self._writer is None:
            self._open()
        self._writer.write(frame)
        self.frames += 1
        if self.segment_frames and self.frames % self.segment_frames == 0:
            self._finish()

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.release()  # writes the container's index: the file plays from here on
            os.replace(self._partial, self._target)
            self.written.append(self._target)
            self._writer = None

    def close(self) -> list[Path]:
        """Finish the current file; returns every file written."""
        self._finish()
        return self.written

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
