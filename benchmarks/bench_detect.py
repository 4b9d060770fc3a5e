"""Images/s of yolov5n at 640 on the shared VOC test images: ascend-slim sequential and pipelined vs a plain
Python pipeline (cv2 letterbox + onnxruntime + numpy decode/NMS), measured side by side in one run.

All variants run the same dynamic-size ONNX model with the same onnxruntime settings. "square" variants do
the same work as the plain pipeline (640x640 input); "rect" is what `ascend-slim detect` does with it
(letterbox to the smallest multiple of 32, as Ultralytics detect.py), so it also runs fewer pixels.

Target: pipelined ascend-slim >= 1.5x the plain pipeline.
"""

from __future__ import annotations

import statistics
import time

import cv2
import numpy as np
import onnxruntime as ort
from _common import parser, voc_test_images, write_json, yolov5n_onnx

from ascend_slim import Detector


def plain_pipeline(session: ort.InferenceSession, meta, paths) -> None:
    """What a user writes without ascend-slim: OpenCV + numpy around an onnxruntime session."""
    import reference  # tests/reference.py: the numpy decode + NMS

    names = [o.name for o in session.get_outputs()]
    h, w = meta.img_size
    for path in paths:
        img = cv2.imread(str(path))
        r = min(h / img.shape[0], w / img.shape[1])
        nw, nh = round(img.shape[1] * r), round(img.shape[0] * r)
        dw, dh = (w - nw) / 2, (h - nh) / 2
        resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        top, left = round(dh - 0.1), round(dw - 0.1)
        boxed = cv2.copyMakeBorder(resized, top, h - nh - top, left, w - nw - left, cv2.BORDER_CONSTANT,
                                   value=(114, 114, 114))
        x = np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0
        heads = session.run(names, {"images": x})
        dets = reference.postprocess(heads, meta.anchors, meta.strides, conf_thres=0.25, iou_thres=0.45,
                                     max_det=1000)[0]
        reference.scale_boxes(dets, r, (left, top), img.shape[:2])


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=100, help="number of VOC test images (default 100)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per variant; the median is reported")
    args = p.parse_args()
    paths = voc_test_images(args.images)
    model = yolov5n_onnx(dynamic=True)
    # sequential: onnxruntime on all cores; pipelined: one single-threaded inference per core in flight
    square = Detector(model, rect=False)
    square_1t, rect_1t = Detector(model, rect=False, num_threads=1), Detector(model, rect=True, num_threads=1)
    for det in (square, square_1t, rect_1t):
        det.predict(paths[:5])  # warm-up

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    plain_pipeline(session, square.meta, paths[:5])  # warm-up
    variants = {
        "plain python (cv2 + ort + numpy)": lambda: plain_pipeline(session, square.meta, paths),
        "ascend-slim sequential, square": lambda: [square.predict(pth) for pth in paths],
        "ascend-slim pipelined, square": lambda: list(square_1t.stream(paths)),
        "ascend-slim pipelined, rect": lambda: list(rect_1t.stream(paths)),
    }
    results = {}
    for name, fn in variants.items():
        seconds = statistics.median(timed(fn, args.repeats))
        results[name] = {"median_s": seconds, "images_per_s": len(paths) / seconds}
    base = results["plain python (cv2 + ort + numpy)"]["images_per_s"]
    print(f"yolov5n 640, {len(paths)} VOC test images, median of {args.repeats} passes (wall clock)")
    print(f"{'variant':<36}{'images/s':>10}{'vs plain':>10}")
    for name, r in results.items():
        r["ratio_vs_plain"] = r["images_per_s"] / base
        print(f"{name:<36}{r['images_per_s']:>10.1f}{r['ratio_vs_plain']:>9.2f}x")
    print(f"target: pipelined >= 1.5x plain (cv2 threads {cv2.getNumThreads()})")
    write_json(args.json, {"images": len(paths), "repeats": args.repeats, "cv2_threads": cv2.getNumThreads(),
                           "results": results, "target_pipelined_vs_plain": 1.5})


if __name__ == "__main__":
    main()
