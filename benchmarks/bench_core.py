"""The C++ core against the plain numpy/OpenCV reference (tests/reference.py), measured side by side in one run.

1. postprocess of yolov5-shaped heads at 640 with 80 classes ([1,3,80,80,85], [1,3,40,40,85],
   [1,3,20,20,85]), single thread, at conf 0.25 (detect: best class, IoU 0.45) and conf 0.001 (eval:
   multi-label, IoU 0.6), max_det 300, on REAL heads and on synthetic ones side by side. Real heads: the
   shared yolov5n checkpoint exported to ONNX (cached in a temporary folder) and run with onnxruntime on
   bus.jpg, zidane.jpg and the first VOC2007 test images, letterboxed to 640 (skipped with --no-real or when
   the shared data is missing); ``--heads FILE.npz`` adds saved heads (arrays ``arr_0..2`` or ``head0..2`` in
   [N,3,ny,nx,85]; the first image). Synthetic heads: ``reference.detector_like_heads`` (recipe in its
   docstring). Target: >= 20x at conf 0.001.
2. fused ``preprocess`` (letterbox + BGR->RGB + CHW + /255 in one pass, single thread) vs ``cv2.resize`` +
   ``cv2.copyMakeBorder`` + numpy transpose/astype/divide, on the shared photos, with OpenCV at its default
   thread count and at one thread. Target: >= 1.5x.
3. batch postprocess (8 images, conf 0.001 multi-label; real heads when there are) with 1, 2 and 4 worker
   threads.

Times are medians over ``--repeat`` runs (the numpy reference gets a third of them, at least 5).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
from _common import DATA, parser, voc_test_images, write_json, yolov5n_onnx

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


def synthetic_heads(batch: int):
    """Detector-like random heads (batch images), anchors, strides."""
    import reference

    heads = reference.detector_like_heads(np.random.default_rng(0), batch=batch, img_size=640, nc=80)
    return heads, reference.YOLOV5_ANCHORS, reference.YOLOV5_STRIDES


def saved_heads(path: str):
    """Heads of the first image in an .npz file, anchors, strides."""
    import reference

    with np.load(path) as f:
        names = [k for k in ("head0", "head1", "head2") if k in f] or [k for k in f.files if k.startswith("arr_")]
        heads = [np.ascontiguousarray(f[k][:1]) for k in sorted(names)]
        anchors = f.get("anchors", reference.YOLOV5_ANCHORS)
        strides = tuple(f.get("strides", reference.YOLOV5_STRIDES))
    return heads, anchors, strides


def real_heads(voc_images: int) -> tuple[dict[str, list[np.ndarray]], np.ndarray, tuple[float, ...]]:
    """yolov5n heads ({image name: [1,3,ny,nx,85] per level}) of the shared photos and VOC test images at 640,
    with the model's anchors and strides (from the ONNX metadata)."""
    import onnxruntime as ort

    from ascend_slim.meta import ModelMeta

    model = yolov5n_onnx(640)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    meta = ModelMeta.from_props(session.get_modelmeta().custom_metadata_map, str(model))
    paths = [DATA / "images" / "bus.jpg", DATA / "images" / "zidane.jpg", *voc_test_images(voc_images)]
    heads = {}
    for path in paths:
        tensor = core.preprocess(cv2.imread(str(path)), 640)[0]
        heads[path.name] = session.run(None, {session.get_inputs()[0].name: tensor})
    return heads, meta.anchors.astype(np.float64), tuple(meta.strides)


def bench_postprocess(source: str, single, anchors, strides, repeat: int) -> list[dict]:
    """C++ vs numpy postprocess of one image's heads at both settings."""
    import reference

    rows = []
    for name, kw in SETTINGS.items():
        dets = core.postprocess(single, anchors, strides, **kw)[0]
        want = reference.postprocess(single, anchors, strides, **kw)[0]
        assert np.array_equal(dets, want), "core and reference disagree"
        candidates = len(core.decode(single, anchors, strides, kw["conf_thres"], kw["multi_label"])[0])
        cpp = median_ms(lambda kw=kw: core.postprocess(single, anchors, strides, **kw), repeat)
        ref = median_ms(lambda kw=kw: reference.postprocess(single, anchors, strides, **kw), max(5, repeat // 3))
        rows.append(dict(name=f"postprocess {name} {source}", heads=source, candidates=candidates,
                         detections=len(dets), cpp_ms=cpp,
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
    p.add_argument("--heads", help="also benchmark saved heads (.npz)")
    p.add_argument("--no-real", action="store_true", help="skip the real yolov5n heads")
    p.add_argument("--voc-images", type=int, default=6, help="VOC2007 test images for real heads (default 6)")
    p.add_argument("--repeat", type=int, default=30, help="timed repetitions per measurement (default 30)")
    args = p.parse_args()

    sources = {}  # name -> (heads of one image, anchors, strides)
    batch = None  # (heads of 8 images, anchors, strides, description) for the thread scaling
    if not args.no_real and (DATA / "weights" / "yolov5n.pt").exists():
        real, anchors, strides = real_heads(args.voc_images)
        for name in ("bus.jpg", "zidane.jpg"):
            sources[f"real {name}"] = (real[name], anchors, strides)
        voc = [h for name, h in real.items() if name not in ("bus.jpg", "zidane.jpg")]
        for k, h in enumerate(voc[:2]):
            sources[f"real VOC #{k}"] = (h, anchors, strides)
        images = list(real.values())
        images = [images[k % len(images)] for k in range(8)]
        batch = ([np.concatenate(level) for level in zip(*images)], anchors, strides, "real yolov5n heads")
    if args.heads:
        sources[f"saved {args.heads}"] = saved_heads(args.heads)
    synthetic, anchors, strides = synthetic_heads(batch=8)
    sources["synthetic"] = ([h[:1] for h in synthetic], anchors, strides)
    batch = batch or (synthetic, anchors, strides, "synthetic detector-like heads")

    post = [row for source, (heads, anchors, strides) in sources.items()
            for row in bench_postprocess(source, heads, anchors, strides, args.repeat)]
    pre = bench_preprocess(args.repeat)
    scaling = bench_threads(*batch[:3], args.repeat)

    print(f"OpenCV {cv2.__version__}, default threads {cv2.getNumThreads()}; thread scaling on {batch[3]}")
    print(f"{'measurement':<64} {'C++ ms':>9} {'baseline ms':>12} {'speedup':>8}")
    for row in post + pre:
        print(f"{row['name']:<64} {row['cpp_ms']:9.3f} {row['baseline_ms']:12.3f} {row['speedup']:7.1f}x")
    for row in post:
        print(f"  {row['name']}: {row['candidates']} candidates -> {row['detections']} detections")
    for row in scaling:
        print(f"{row['name']:<64} {row['cpp_ms']:9.3f} {'':>12} {row['speedup']:7.2f}x")
    write_json(args.json, {"opencv": cv2.__version__, "thread_scaling_heads": batch[3], "postprocess": post,
                           "preprocess": pre, "thread_scaling": scaling})


if __name__ == "__main__":
    main()
