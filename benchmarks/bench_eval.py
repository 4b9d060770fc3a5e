"""Images/s of a full VOC eval run (yolov5n 640, conf 0.001, IoU 0.6, multi-label, max 300) on the shared
test subset, with the busy time of each stage: decode, preprocess, inference, postprocess, metric.

Images are processed concurrently (one single-threaded inference per core, as `ascend-slim eval` does), so
shares are of the summed busy time; wall time is reported beside.
"""

from __future__ import annotations

import time

from _common import DATA, parser, write_json, yolov5n_onnx

from ascend_slim import Detector
from ascend_slim.classes import VOC_CLASSES
from ascend_slim.data.voc import load_voc
from ascend_slim.evaluation import detect_dataset, score_detections


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    ds = load_voc(DATA / "VOCdevkit", year="2007", split="test", class_names=VOC_CLASSES)
    det = Detector(yolov5n_onnx(), conf_thres=0.001, iou_thres=0.6, max_det=300, multi_label=True, num_threads=1)
    det.predict(ds.image_path(ds.ids[0]))  # warm-up
    with det.timing() as times:
        start = time.perf_counter()
        detections = detect_dataset(det, ds, progress=False)
        with times.measure("metric"):
            result = score_detections(detections, ds.annotations, ds.class_names)
        wall = time.perf_counter() - start
    summary = times.summary()
    busy = sum(s["total_s"] for s in summary.values())
    print(f"{len(ds.ids)} images in {wall:.1f} s wall = {len(ds.ids) / wall:.1f} images/s "
          f"(mAP@.5 VOC07 {result.means['ap50_voc07']:.4f})")
    print(f"{'stage':<12}{'busy s':>9}{'share':>8}{'p50 ms':>9}")
    for stage, s in summary.items():
        s["share"] = s["total_s"] / busy
        print(f"{stage:<12}{s['total_s']:>9.2f}{s['share']:>8.1%}{s['p50_ms']:>9.2f}")
    write_json(args.json, {"images": len(ds.ids), "wall_s": wall, "images_per_s": len(ds.ids) / wall,
                           "stages": summary, "map50_voc07": result.means["ap50_voc07"]})


if __name__ == "__main__":
    main()
