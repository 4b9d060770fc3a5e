"""The C++ core against the plain numpy/OpenCV reference (tests/reference.py), measured side by side in one run.

1. postprocess of yolov5s-shaped heads at 640 with 80 classes ([1,3,80,80,85], [1,3,40,40,85],
   [1,3,20,20,85]), single thread, at conf 0.25 (detect: best class, IoU 0.45) and conf 0.001 (eval:
   multi-label, IoU 0.6), max_det 300. Heads come from ``reference.detector_like_heads`` (recipe in its
   docstring) or from ``--heads FILE.npz`` (real heads: arrays ``arr_0..2`` or ``head0..2`` in
   [N,3,ny,nx,85]; the first image is used). Target: >= 20x at conf 0.001.
2. fused ``preprocess`` (letterbox + BGR->RGB + CHW + /255 in one pass, single thread) vs ``cv2.resize`` +
   ``cv2.copyMakeBorder`` + numpy transpose/astype/divide, on the shared photos, with OpenCV at its default
   thread count and at one thread. Target: >= 1.5x.
3. batch postprocess (8 images, conf 0.001 multi-label) with 1, 2 and 4 worker threads.

Times are medians over ``--repeat`` runs (the numpy reference gets a third of them, at least 5).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
from _common import DATA, parser, write_json

from ascend_slim import core

SETTINGS = {
    "conf 0.25 (detect)": dict(conf_thres=0.25, iou_thres=0.45, max_det=300, multi_label=False),
    "conf 0.001 (eval)": dict(conf_thres=0.001, iou_thres=0.6, max_det=300, multi_label=True),
}


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def load_heads(path: str | None, batch: int):
    """Heads (batch images), anchors, strides and a description of where they came from."""
    import reference

    if path is None:
        heads = reference.detector_like_heads(np.random.default_rng(0), batch=batch, img_size=640, nc=80)
        return heads, reference.YOLOV5_ANCHORS, reference.YOLOV5_STRIDES, "synthetic detector-like"
    with np.load(path) as f:
        names = [k for k in ("head0", "head1", "head2") if k in f] or [k for k in f.files if k.startswith("arr_")]
        heads = [np.ascontiguousarray(f[k][:1]) for k in sorted(names)]
        anchors = f.get("anchors", reference.YOLOV5_ANCHORS)
        strides = tuple(f.get("strides", reference.YOLOV5_STRIDES))
    heads = [np.concatenate([h] * batch) for h in heads]
    return heads, anchors, strides, f"real heads from {path}"


def bench_postprocess(heads, anchors, strides, repeat: int) -> list[dict]:
    import reference

    single = [h[:1] for h in heads]
    rows = []
    for name, kw in SETTINGS.items():
        dets = core.postprocess(single, anchors, strides, **kw)[0]
        want = reference.postprocess(single, anchors, strides, **kw)[0]
        assert np.array_equal(dets, want), "core and reference disagree"
        candidates = len(core.decode(single, anchors, strides, kw["conf_thres"], kw["multi_label"])[0])
        cpp = median_ms(lambda kw=kw: core.postprocess(single, anchors, strides, **kw), repeat)
        ref = median_ms(lambda kw=kw: reference.postprocess(single, anchors, strides, **kw), max(5, repeat // 3))
        rows.append(dict(name=f"postprocess {name}", candidates=candidates, detections=len(dets), cpp_ms=cpp,
                         baseline_ms=ref, speedup=ref / cpp))
    return rows


def opencv_preprocess(img: np.ndarray, size: int) -> np.ndarray:
    """What YOLOv5 does: cv2 letterbox, then numpy to a 1x3xHxW float32 RGB tensor in [0, 1]."""
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nw, nh = round(w * r), round(h * r)
    dw, dh = (size - nw) / 2, (size - nh) / 2
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = round(dh - 0.1), round(dw - 0.1)
    boxed = cv2.copyMakeBorder(resized, top, size - nh - top, left, size - nw - left, cv2.BORDER_CONSTANT,
                               value=(114, 114, 114))
    chw = np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1))
    return (chw.astype(np.float32) / np.float32(255.0))[None]


def bench_preprocess(repeat: int) -> list[dict]:
    photos = {p.name: cv2.imread(str(p)) for p in sorted((DATA / "images").glob("*.jpg"))}
    default_threads = cv2.getNumThreads()
    rows = []
    for threads in (default_threads, 1):
        cv2.setNumThreads(threads)
        for name, img in photos.items():
            assert np.abs(core.preprocess(img, 640)[0] - opencv_preprocess(img, 640)).max() <= 1 / 255 + 1e-7
            cpp = median_ms(lambda img=img: core.preprocess(img, 640), repeat)
            ref = median_ms(lambda img=img: opencv_preprocess(img, 640), repeat)
            rows.append(dict(name=f"preprocess {name} {img.shape[1]}x{img.shape[0]}->640 (cv2 {threads} thr)",
                             cv2_threads=threads, cpp_ms=cpp, baseline_ms=ref, speedup=ref / cpp))
    cv2.setNumThreads(default_threads)
    return rows


def bench_threads(heads, anchors, strides, repeat: int) -> list[dict]:
    kw = SETTINGS["conf 0.001 (eval)"]
    rows = []
    for threads in (1, 2, 4):
        ms = median_ms(lambda t=threads: core.postprocess(heads, anchors, strides, num_threads=t, **kw), repeat)
        rows.append(dict(name=f"postprocess batch {heads[0].shape[0]}, {threads} thread(s)", threads=threads,
                         cpp_ms=ms))
    for row in rows:
        row["speedup"] = rows[0]["cpp_ms"] / row["cpp_ms"]
    return rows


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--heads", help="real heads (.npz) instead of synthetic ones")
    p.add_argument("--repeat", type=int, default=30, help="timed repetitions per measurement (default 30)")
    args = p.parse_args()

    heads, anchors, strides, source = load_heads(args.heads, batch=8)
    post = bench_postprocess(heads, anchors, strides, args.repeat)
    pre = bench_preprocess(args.repeat)
    scaling = bench_threads(heads, anchors, strides, args.repeat)

    print(f"heads: {source}; OpenCV {cv2.__version__}, default threads {cv2.getNumThreads()}")
    print(f"{'measurement':<58} {'C++ ms':>9} {'baseline ms':>12} {'speedup':>8}")
    for row in post + pre:
        print(f"{row['name']:<58} {row['cpp_ms']:9.3f} {row['baseline_ms']:12.3f} {row['speedup']:7.1f}x")
    for row in post:
        print(f"  {row['name']}: {row['candidates']} candidates -> {row['detections']} detections")
    for row in scaling:
        print(f"{row['name']:<58} {row['cpp_ms']:9.3f} {'':>12} {row['speedup']:7.2f}x")
    write_json(args.json, {"heads": source, "opencv": cv2.__version__, "postprocess": post, "preprocess": pre,
                           "thread_scaling": scaling})


if __name__ == "__main__":
    main()
