"""``ascend-slim eval``: score a model (or detection files from a device) on a Pascal VOC split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import add_model_args

NAME = "eval"
HELP = "score a model (or detection files) on Pascal VOC"
METRICS = {"voc07": "ap50_voc07", "all": "ap50", "sample": "ap55_sample", "coco": "ap50_95"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..evaluation.protocol import VAL_SETTINGS

    add_model_args(p, conf=VAL_SETTINGS["conf_thres"], iou=VAL_SETTINGS["iou_thres"], max_det=VAL_SETTINGS["max_det"],
                   threads=1)
    p.add_argument("--data", required=True, help="the VOCdevkit folder (contains VOC<year>/)")
    p.add_argument("--year", default="2007", help="VOC year (default 2007)")
    p.add_argument("--split", default="test", help="image set in ImageSets/Main (default test)")
    p.add_argument("--metric", choices=tuple(METRICS), default="voc07",
                   help="headline metric: voc07 (11-point AP@.5, devkit default for 2007), all (all-point AP@.5), "
                        "sample (Ascend sample: all-point AP@.55), coco (all-point AP@.5:.95); all are reported")
    p.add_argument("--out", default="txt_result", help="folder for det_test_<class>.txt (rewritten each run)")
    p.add_argument("--json", default=None, help="write all metrics to this JSON file")
    p.add_argument("--plots", default="eval_result",
                   help="folder for pr_curves.png and class_ap.png (default eval_result/ in the current folder; "
                        "'' for none)")
    p.add_argument("--from-txt", default=None, metavar="DIR",
                   help="score existing det_test_<class>.txt files (e.g. from an Ascend device); runs no model")
    p.add_argument("--strict", action="store_true", help="fail on the first bad image or annotation")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..classes import VOC_CLASSES
    from ..data.voc import load_voc
    from ..evaluation import evaluate_file, score_detections
    from ..evaluation.detfiles import read_det_files, unknown_image_ids, write_det_files
    from ..evaluation.report import format_table, write_json
    from ..fileio import check_outputs

    check_outputs([("--weights", None if args.from_txt else args.weights), ("--data", args.data),
                   ("--from-txt", args.from_txt)], files=[("--json", args.json)],
                  folders=[("--out", None if args.from_txt else args.out), ("--plots", args.plots)])
    ds = load_voc(args.data, year=args.year, split=args.split, class_names=VOC_CLASSES, strict=args.strict)
    split = f"VOC{args.year} {args.split}"
    skipped: list[tuple[str, str]] = []

    def skip(image_id: str, reason: str) -> None:  # one policy: every skipped image is named on stderr, counted
        skipped.append((image_id, reason))
        tqdm.write(f"skipped {image_id}: {reason}", file=sys.stderr)  # on its own line, also under a progress bar

    for image_id, reason in ds.skipped:
        skip(image_id, reason)
    if args.from_txt:
        detections = read_det_files(args.from_txt, ds.class_names)
        listed = [*ds.ids, *(i for i, _ in ds.skipped)]
        unknown = unknown_image_ids(detections, listed, source=args.from_txt, split=split)
        if unknown:
            print(f"warning: {len(unknown)} image id(s) in {args.from_txt} are not in {split} and are ignored "
                  f"(first: {unknown[0]})", file=sys.stderr)
        source = f"detection files in {args.from_txt}"
    else:  # the validation protocol with the flags' thresholds; scores exactly what the files hold
        evaluation = evaluate_file(args.weights, ds, img_size=args.img, backend=args.backend, device=args.device,
                                   num_threads=args.threads or None, workers=args.workers, strict=args.strict,
                                   on_skip=skip, conf_thres=args.conf_thres, iou_thres=args.iou_thres,
                                   max_det=args.max_det)
        detections, source = evaluation.detections, evaluation.source
        write_det_files(args.out, detections, ds.class_names)

    skipped_ids = {i for i, _ in skipped}
    annotations = {i: ds.annotations[i] for i in ds.ids if i not in skipped_ids}
    result = score_detections(detections, annotations, ds.class_names)
    print(f"{source} on {split}: {len(annotations)} images, {len(skipped)} skipped")
    print(format_table(result))
    headline = METRICS[args.metric]
    print(f"{args.metric}: {headline} = {result.means[headline]:.4f}")
    if args.json:
        settings = {"source": source, "data": str(args.data), "year": args.year, "split": args.split,
                    "conf_thres": args.conf_thres, "iou_thres": args.iou_thres, "max_det": args.max_det}
        write_json(args.json, result, extra={"settings": settings, "skipped": skipped})
    if args.plots:
        from ..evaluation.plots import plot_class_ap, plot_pr_curves

        plots = Path(args.plots)
        plot_pr_curves(result, plots / "pr_curves.png")
        plot_class_ap(result, plots / "class_ap.png")
        print(f"plots in {plots}/")
    return 0
