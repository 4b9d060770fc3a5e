"""``Detector``, the in-process API: the C++ core pre- and post-processes, a backend runs the model."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TypeVar, Union

import numpy as np

from . import core
from .errors import AscendSlimError
from .imageio import read_image
from .meta import as_hw
from .profiling import StageTimes, maybe_measure
from .runtime.base import Backend
from .runtime.factory import open_backend
from .videoio import VideoReader, video_source
from .weights import resolve_weights

ImageLike = Union[str, Path, np.ndarray]
VideoLike = Union[str, Path, int, VideoReader]  # a video file, stream URL, webcam index or open reader
T = TypeVar("T")
R = TypeVar("R")
POSTPROCESS_MODES = ("yolov5", "mindx")  # see ascend_slim.core


@dataclass(frozen=True)
class Detection:
    """One detected object in original-image pixels (0-based ``x1, y1, x2, y2``)."""

    box: tuple[float, float, float, float]
    score: float
    class_id: int
    name: str


@dataclass
class Detections:
    """All detections in one image, highest score first."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 in original pixels
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64
    class_names: Sequence[str]  # the model's class names (indexed by class id)
    image_shape: tuple[int, int]  # (height, width) of the original image
    source: str | None = None
    image: np.ndarray | None = None  # the decoded BGR image, only when asked for (``stream(keep_images=True)``)

    @classmethod
    def from_array(cls, dets: np.ndarray, class_names: Sequence[str], image_shape: tuple[int, int],
                   source: str | None = None, image: np.ndarray | None = None) -> Detections:
        return cls(dets[:, :4].astype(np.float32), dets[:, 4].astype(np.float32), dets[:, 5].astype(np.int64),
                   class_names, image_shape, source, image)

    def to_array(self) -> np.ndarray:
        """``Nx6 float32 [x1, y1, x2, y2, score, class]``."""
        return np.concatenate([self.boxes, self.scores[:, None], self.class_ids[:, None].astype(np.float32)],
                              axis=1).astype(np.float32)

    @property
    def labels(self) -> list[str]:
        return [self.class_names[i] for i in self.class_ids]

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[Detection]:
        for box, score, cid in zip(self.boxes, self.scores, self.class_ids):
            yield Detection(tuple(float(v) for v in box), float(score), int(cid), self.class_names[cid])


@dataclass
class Prepared:
    """A preprocessed batch and what is needed to map its boxes back."""

    tensor: np.ndarray
    ratios: np.ndarray
    pads: np.ndarray
    shapes: list[tuple[int, int]]
    sources: list[str | None]
    images: list[np.ndarray] | None = None  # kept only when the caller wants the decoded images back


class Detector:
    """YOLOv5 detector on any backend.

    >>> det = Detector("yolov5n.pt")             # doctest: +SKIP
    >>> det.predict("bus.jpg").labels            # doctest: +SKIP
    ['bus', 'person', 'person', 'person', 'person']

    ``weights``: ``.pt`` (official Ultralytics or ascend-slim; exported to a cached ONNX), ``.onnx``
    (ascend-slim export), ``.xml`` (OpenVINO IR) or ``.om`` (Ascend); ``None`` uses ``$ASCEND_SLIM_WEIGHTS`` or
    the official yolov5s.
    ``backend`` names the backend (``auto`` picks by file type) or is an open :class:`Backend` (then
    ``weights`` is only a label), e.g. ``TorchBackend.from_model(model)`` to run an in-memory model.
    ``img_size`` defaults to the model's own size (for a checkpoint, the size it was saved for; 640 for official
    ones). ``rect`` letterboxes each image to the smallest stride multiple around ``img_size`` (as Ultralytics
    ``detect.py``) instead of the full square;
    it needs a model with dynamic input size and is the default for those (``.pt`` weights run as a dynamic
    ONNX export). ``classes`` keeps only those class ids or names. ``mode`` is the postprocess definition:
    ``"yolov5"`` or ``"mindx"`` (see ``core``). ``device``: ``cpu``, ``cuda[:N]`` (onnxruntime) or ``npu[:N]``
    (Ascend); ``providers`` gives onnxruntime an explicit provider list instead. ``num_threads``: onnxruntime
    threads per inference (default: all cores; 1 is best for ``stream`` throughput, one worker per core).
    ``streams``: inferences the backend prepares to run at once (OpenVINO: 1 or None is the latency hint, more the
    throughput hint with that many streams; set it to ``stream``'s ``workers``); other backends ignore it.
    """

    def __init__(self, weights: str | Path | None = None, backend: str | Backend = "auto",
                 img_size: int | None = None, conf_thres: float = 0.25, iou_thres: float = 0.45,
                 max_det: int = 1000, classes: Sequence[int | str] | None = None, multi_label: bool = False,
                 mode: str = "yolov5", rect: bool | None = None, device: str = "cpu",
                 providers: Sequence[str] | None = None, num_threads: int | None = None,
                 streams: int | None = None) -> None:
        if not 0.0 <= conf_thres <= 1.0 or not 0.0 <= iou_thres <= 1.0:
            raise AscendSlimError(f"thresholds must lie in [0, 1], got conf {conf_thres}, iou {iou_thres}")
        if max_det < 1:
            raise AscendSlimError(f"max_det must be at least 1, got {max_det}")
        if mode not in POSTPROCESS_MODES:
            raise AscendSlimError(f"unknown postprocess mode {mode!r}: choose {' or '.join(POSTPROCESS_MODES)}")
        self.num_threads = num_threads
        if isinstance(backend, Backend):
            self.weights = Path(weights or backend.name)
            self.backend = backend
        else:
            self.weights = resolve_weights(weights)
            self.backend = open_backend(self.weights, backend, img_size=img_size, device=device,
                                        providers=providers, num_threads=num_threads, streams=streams)
        self.meta = self.backend.meta
        stride = int(max(self.meta.strides))
        if self.meta.dynamic:
            if img_size is not None and img_size % stride:
                raise AscendSlimError(f"--img {img_size} must be a multiple of the model stride {stride}")
            self.img_size = as_hw(img_size) if img_size else self.meta.img_size
        elif img_size is not None and as_hw(img_size) != self.meta.img_size:
            raise AscendSlimError(
                f"{self.weights.name} takes {self.meta.img_size[1]}x{self.meta.img_size[0]} input, not "
                f"{img_size}: export it again with --img {img_size} or drop --img"
            )
        else:
            self.img_size = self.meta.img_size
        self.rect = self.meta.dynamic if rect is None else rect
        if self.rect and not self.meta.dynamic:
            raise AscendSlimError(f"{self.weights.name} has a static input size: rectangular letterbox needs a "
                                  "dynamic export (ascend-slim export --dynamic)")
        self.batch = 1 if self.rect else self.meta.batch
        self.stride = stride
        self.conf_thres, self.iou_thres, self.max_det = conf_thres, iou_thres, max_det
        self.multi_label, self.mode = multi_label, mode
        self.classes = self._class_ids(classes) if classes is not None else None
        self._times: StageTimes | None = None  # set only inside ``timing()``

    @property
    def names(self) -> list[str]:
        return self.meta.names

    @contextmanager
    def timing(self) -> Iterator[StageTimes]:
        """Record the wall-clock duration of every stage call made inside the block.

        >>> with det.timing() as times:             # doctest: +SKIP
        ...     det.predict("bus.jpg")
        >>> times.summary()["inference"]["p50_ms"]  # doctest: +SKIP
        """
        if self._times is not None:
            raise RuntimeError("Detector.timing() blocks cannot be nested")
        self._times = StageTimes()
        try:
            yield self._times
        finally:
            self._times = None

    def _class_ids(self, classes: Sequence[int | str]) -> list[int]:
        return class_ids(self.names, classes)

    # -- stages -------------------------------------------------------------------------------------
    def prepare(self, images: Sequence[ImageLike], keep_images: bool = False) -> Prepared:
        """Read (if paths) and letterbox a batch into the backend's input tensor."""
        with maybe_measure(self._times, "decode"):
            arrays = [read_image(im) if not isinstance(im, np.ndarray) else im for im in images]
        sources = [str(im) if not isinstance(im, np.ndarray) else None for im in images]
        with maybe_measure(self._times, "preprocess"):
            tensor, ratios, pads = core.preprocess(arrays, self.img_size, auto=self.rect, stride=self.stride,
                                                   dtype=self.backend.input_dtype, layout=self.backend.input_layout)
        return Prepared(tensor, ratios, pads, [a.shape[:2] for a in arrays], sources,
                        arrays if keep_images else None)

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run the model on a batch, padding it to the model's static batch size."""
        n, batch = tensor.shape[0], self.batch
        if n == batch:
            with maybe_measure(self._times, "inference"):
                return self.backend.run(tensor)
        if n > batch:
            parts = [self.infer(tensor[i:i + batch]) for i in range(0, n, batch)]
            return [np.concatenate(outs, axis=0) for outs in zip(*parts)]
        padded = np.zeros((batch, *tensor.shape[1:]), dtype=tensor.dtype)
        padded[:n] = tensor
        return [out[:n] for out in self.infer(padded)]

    def postprocess(self, outputs: list[np.ndarray], prepared: Prepared,
                    classes: Sequence[int] | None = None) -> list[Detections]:
        """Decode, NMS and map boxes back to each original image; ``classes`` (ids) replaces the Detector's
        class filter for this call."""
        with maybe_measure(self._times, "postprocess"):
            return self._postprocess(outputs, prepared, self.classes if classes is None else classes)

    def _postprocess(self, outputs: list[np.ndarray], prepared: Prepared,
                     classes: Sequence[int] | None) -> list[Detections]:
        kwargs = dict(conf_thres=self.conf_thres, iou_thres=self.iou_thres, max_det=self.max_det,
                      multi_label=self.multi_label, classes=classes, mode=self.mode)
        if self.meta.head == "decoded":
            per_image = core.postprocess_decoded(outputs[0], **kwargs)
        else:
            per_image = core.postprocess(outputs, self.meta.anchors, self.meta.strides, **kwargs)
        images = prepared.images or [None] * len(per_image)
        results = []
        for dets, ratio, pad, shape, source, image in zip(per_image, prepared.ratios, prepared.pads,
                                                          prepared.shapes, prepared.sources, images):
            scaled = core.scale_boxes(dets, float(ratio), (int(pad[0]), int(pad[1])), shape)
            results.append(Detections.from_array(scaled, self.names, shape, source, image))
        return results

    # -- convenience ----------------------------------------------------------------------------------
    def predict(self, source: ImageLike | Sequence[ImageLike]) -> Detections | list[Detections]:
        """Detect objects in one image (path or BGR array) or a list of them."""
        single = isinstance(source, (str, Path, np.ndarray))
        images = [source] if single else list(source)
        if not images:
            raise AscendSlimError("predict() got an empty list of images")
        results = []
        for i in range(0, len(images), self.batch):
            results.extend(self._detect_batch(images[i:i + self.batch]))
        return results[0] if single else results

    def stream(self, source: Iterable[ImageLike] | VideoLike, workers: int | None = None, prefetch: int = 4,
               keep_images: bool = False, classes: Sequence[int | str] | None = None,
               vid_stride: int = 1) -> Iterator[Detections] | Iterator[tuple[int, np.ndarray, Detections]]:
        """Detections for many images or the frames of a video, in input order, with work overlapped in threads.

        ``source`` is an iterable of images (paths or BGR arrays): yields one :class:`Detections` per image.
        Or it is one video: a video file, an ``rtsp://``/``rtmp://``/``http(s)://`` URL, a webcam index or an
        open :class:`~ascend_slim.videoio.VideoReader`: frames are decoded in a reader thread (every
        ``vid_stride``-th kept) and yields ``(frame_index, frame, Detections)``.

        Backends that run several inferences at once (onnxruntime) process ``workers`` images concurrently,
        each thread doing decode -> preprocess -> inference -> postprocess (best with a single-threaded
        session, ``num_threads=1``, and one worker per core: the default). Other backends (one device) run
        inference in order while decode/preprocess run ``prefetch`` batches ahead in ``workers`` threads and
        postprocess overlaps the next inference. The C++ core releases the GIL throughout. ``keep_images``
        returns each decoded image in ``Detections.image`` (e.g. for drawing) instead of decoding it again.
        ``classes`` (ids or names) replaces the Detector's class filter for this call.
        """
        if isinstance(source, (str, Path, int, VideoReader)):
            return self._stream_video(source, workers, prefetch, classes, vid_stride)
        return self._stream_images(source, workers, prefetch, keep_images, classes)

    def _stream_video(self, source: VideoLike, workers: int | None, prefetch: int,
                      classes: Sequence[int | str] | None,
                      vid_stride: int) -> Iterator[tuple[int, np.ndarray, Detections]]:
        if not isinstance(source, VideoReader) and video_source(source) is None:
            raise AscendSlimError(f"stream() takes one video (file, stream URL or webcam index) or an iterable of "
                                  f"images, not {source!r}: use predict() for one image")
        reader = source if isinstance(source, VideoReader) else VideoReader(source, vid_stride)
        indexes: deque[int] = deque()

        def frames() -> Iterator[np.ndarray]:
            for index, frame in reader:
                indexes.append(index)  # consumed in order below: results come back in input order
                yield frame

        try:
            for dets in self._stream_images(frames(), workers, prefetch, True, classes):
                yield indexes.popleft(), dets.image, dets
        finally:
            if reader is not source:
                reader.close()

    def _stream_images(self, sources: Iterable[ImageLike], workers: int | None, prefetch: int, keep_images: bool,
                       classes: Sequence[int | str] | None) -> Iterator[Detections]:
        class_ids = self._class_ids(classes) if classes is not None else None
        batches = _chunks(iter(sources), self.batch)
        if self.backend.concurrent:
            workers = workers or os.cpu_count() or 2
            with ThreadPoolExecutor(workers) as pool:
                detect = partial(self._detect_batch, keep_images=keep_images, classes=class_ids)
                for results in _ordered_map(pool, detect, batches, workers + prefetch):
                    yield from results
            return
        with ThreadPoolExecutor(workers or 2) as pool:
            post: Future[list[Detections]] | None = None
            for prepared in _ordered_map(pool, partial(self.prepare, keep_images=keep_images), batches, prefetch):
                outputs = self.infer(prepared.tensor)
                if post is not None:
                    yield from post.result()
                post = pool.submit(self.postprocess, outputs, prepared, class_ids)
            if post is not None:
                yield from post.result()

    def _detect_batch(self, batch: Sequence[ImageLike], keep_images: bool = False,
                      classes: Sequence[int] | None = None) -> list[Detections]:
        prepared = self.prepare(batch, keep_images)
        return self.postprocess(self.infer(prepared.tensor), prepared, classes)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def class_ids(names: Sequence[str], classes: Sequence[int | str]) -> list[int]:
    """Class ids for ``classes`` given as ids or names of ``names``; raises naming one that is neither."""
    ids = []
    for c in classes:
        if isinstance(c, str) and not c.isdigit():
            if c not in names:
                raise AscendSlimError(f"class {c!r} is not one of the model's {len(names)} classes")
            ids.append(list(names).index(c))
        elif not 0 <= int(c) < len(names):
            raise AscendSlimError(f"class id {c} out of range: the model has {len(names)} classes")
        else:
            ids.append(int(c))
    return ids


def _chunks(items: Iterator[ImageLike], size: int) -> Iterator[list[ImageLike]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _ordered_map(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterator[T], ahead: int) -> Iterator[R]:
    """``fn`` over ``items`` in ``pool``, results in input order, at most ``ahead`` submitted but not consumed."""
    pending: deque[Future[R]] = deque(pool.submit(fn, item) for item in islice(items, max(1, ahead)))
    while pending:
        result = pending.popleft().result()
        nxt = next(items, None)
        if nxt is not None:
            pending.append(pool.submit(fn, nxt))
        yield result
