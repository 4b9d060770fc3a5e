"""``eval``: run a model over a VOC split (pipelined) or read detection files, then score and report."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..classes import VOC_CLASSES, class_map
from ..data.voc import VOCDataset, load_voc
from ..errors import AscendSlimError
from ..fileio import check_output_dir
from .detfiles import read_det_files, round_as_written, write_det_files
from .metrics import evaluate
from .report import format_table, write_json

METRICS = {"voc07": "ap50_voc07", "all": "ap50", "sample": "ap55_sample", "coco": "ap50_95"}


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="the VOCdevkit folder (contains VOC<year>/)")
    p.add_argument("--year", default="2007", help="VOC year (default 2007)")
    p.add_argument("--split", default="test", help="image set in ImageSets/Main (default test)")
    p.add_argument("--metric", choices=tuple(METRICS), default="voc07",
                   help="headline metric: voc07 (11-point AP@.5, devkit default for 2007), all (all-point AP@.5), "
                        "sample (Ascend sample: all-point AP@.55), coco (all-point AP@.5:.95); all are reported")
    p.add_argument("--out", default="txt_result", help="folder for det_test_<class>.txt (rewritten each run)")
    p.add_argument("--json", default=None, help="write all metrics to this JSON file")
    p.add_argument("--plots", default="eval_result", help="folder for PR curves and the per-class AP chart")
    p.add_argument("--from-txt", default=None, metavar="DIR",
                   help="score existing det_test_<class>.txt files (e.g. from an Ascend device); runs no model")
    p.add_argument("--strict", action="store_true", help="fail on the first bad image or annotation")


def detect_dataset(det, ds: VOCDataset, workers: int | None = None) -> dict[str, np.ndarray]:
    """Run ``det`` (a Detector) over every image of ``ds``; returns VOC-class detections per image id.

    The model's classes are mapped onto the data set's (a COCO model through the exact COCO->VOC map) and
    other classes are dropped before NMS, like YOLOv5's ``--classes``.
    """
    mapping = class_map(det.names, ds.class_names)
    det.classes = mapping
    to_target = np.full(len(det.names), -1, dtype=np.int64)
    to_target[mapping] = np.arange(len(mapping))
    paths = [ds.image_path(i) for i in ds.ids]
    detections: dict[str, np.ndarray] = {}
    for image_id, dets in zip(ds.ids, tqdm(det.stream(paths, workers=workers), total=len(paths), desc="eval",
                                           unit="img")):
        arr = dets.to_array()
        arr[:, 5] = to_target[arr[:, 5].astype(np.int64)]
        detections[image_id] = arr
    return detections


def run_eval(args: argparse.Namespace) -> int:
    for folder, what in ((args.out, "--out"), (args.plots, "--plots"),
                         (Path(args.json).parent if args.json else None, "--json folder")):
        if folder:
            check_output_dir(folder, what)
    ds = load_voc(args.data, year=args.year, split=args.split, class_names=VOC_CLASSES, strict=args.strict)
    if not ds.ids:
        raise AscendSlimError(f"no usable images in {args.data} ({args.split}): {len(ds.skipped)} skipped")
    for image_id, reason in ds.skipped[:10]:
        print(f"skipped {image_id}: {reason}")
    if len(ds.skipped) > 10:
        print(f"... {len(ds.skipped) - 10} more skipped")

    if args.from_txt:
        detections = read_det_files(args.from_txt, ds.class_names)
        source = f"detection files in {args.from_txt}"
    else:
        from ..cli import _detector

        with _detector(args, multi_label=True, rect=False) as det:  # square letterbox, as the reference
            detections = detect_dataset(det, ds, workers=args.workers)
            source = f"{det.weights} ({det.backend.name}, {det.img_size[1]}x{det.img_size[0]})"
        write_det_files(args.out, detections, ds.class_names)
        detections = round_as_written(detections)  # score exactly what the files hold, as --from-txt would

    result = evaluate(detections, ds.annotations, ds.class_names)
    print(f"{source} on VOC{args.year} {args.split}: {len(ds.ids)} images, {len(ds.skipped)} skipped")
    print(format_table(result))
    headline = METRICS[args.metric]
    print(f"{args.metric}: {headline} = {result.means[headline]:.4f}")
    if args.json:
        settings = {"source": source, "data": str(args.data), "year": args.year, "split": args.split,
                    "conf_thres": args.conf_thres, "iou_thres": args.iou_thres, "max_det": args.max_det}
        write_json(args.json, result, extra={"settings": settings, "skipped": ds.skipped})
    if args.plots:
        from .plots import plot_class_ap, plot_pr_curves

        plots = Path(args.plots)
        plot_pr_curves(result, plots / "pr_curves.png")
        plot_class_ap(result, plots / "class_ap.png")
        print(f"plots in {plots}/")
    return 0
