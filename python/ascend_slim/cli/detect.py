"""``ascend-slim detect``: detect objects in images and draw them (and optionally write YOLO txt labels)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import add_model_args, detector_from_args

NAME = "detect"
HELP = "detect objects and draw them into images"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p, conf=0.25, iou=0.45, max_det=1000, threads=1)
    p.add_argument("--source", required=True, help="image file, folder or glob (with --image-set: the folder)")
    p.add_argument("--image-set", help="file of image ids (one per line, no suffix): reads <source>/<id>.jpg")
    p.add_argument("--classes", help="comma-separated class ids or names to keep")
    p.add_argument("--out", default="image_result", help="output folder (default image_result/); images that "
                   "share a file name (x.jpg, x.png) are written as x.jpg, x_2.jpg, ...")
    p.add_argument("--save-txt", action="store_true", help="also write labels/<image>.txt (class cx cy w h conf)")
    p.add_argument("--nosave", action="store_true", help="do not write the drawn images (e.g. for timing runs)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.yolo_txt import format_yolo_lines
    from ..drawing import draw_detections
    from ..fileio import atomic_write_text, check_outputs
    from ..imageio import list_sources, unique_stems, write_image

    paths = list_sources(args.source, args.image_set)
    stems = unique_stems(paths)  # every image keeps its own output, also when two share a file name
    renamed = [(path, stem) for path, stem in zip(paths, stems) if stem != path.stem]
    if renamed:
        print(f"note: {len(renamed)} image(s) share a file name with an earlier one; their outputs get a numeric "
              f"suffix ({renamed[0][0]} -> {renamed[0][1]})", file=sys.stderr)
    classes = args.classes.split(",") if args.classes else None
    writes = not args.nosave or args.save_txt
    out = Path(args.out) if writes else None
    check_outputs([("--source", path) for path in paths], folders=[("--out", out)])
    with detector_from_args(args, classes=classes) as det:
        counts: dict[str, int] = {}
        stream = det.stream(paths, workers=args.workers, keep_images=not args.nosave)
        for dets, stem in zip(tqdm(stream, total=len(paths), desc="detect", unit="img"), stems):
            if not args.nosave:
                write_image(out / f"{stem}.jpg", draw_detections(dets.image, dets))
            if args.save_txt:
                text = format_yolo_lines(dets.boxes, dets.class_ids, dets.image_shape, scores=dets.scores)
                atomic_write_text(out / "labels" / f"{stem}.txt", text)
            for name in dets.labels:
                counts[name] = counts.get(name, 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "nothing"
    print(f"{len(paths)} image(s): {summary}" + (f"; results in {out}/" if writes else "; nothing written (--nosave)"))
    return 0
