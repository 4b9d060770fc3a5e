"""Build the small-object variant of a VOC2007 folder: every image shrunk by 2 onto a gray canvas of its own size
(at a seeded random place), every box moved and halved with it, so every object is half as large and the scene is
unchanged otherwise. Splits, class names and difficult flags are kept. The output goes outside the repository
(data never enters it); a finished output is reused.

    python benchmarks/small_objects.py --out /tmp/voc-small            # from $ASCEND_SLIM_DATA/VOCdevkit
"""

from __future__ import annotations

import argparse
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
from _common import DATA, REPO
from tqdm import tqdm

GRAY = 114  # YOLOv5's letterbox gray
SCALE = 2


def shrink_box(box: ET.Element, scale: int, ox: int, oy: int) -> None:
    """VOC boxes are 1-based inclusive pixels: shrink the continuous box [xmin - 1, xmax] and write it back."""
    for lo, hi, offset in (("xmin", "xmax", ox), ("ymin", "ymax", oy)):
        a, b = float(box.find(lo).text) - 1, float(box.find(hi).text)
        a, b = a / scale + offset, b / scale + offset
        box.find(lo).text = str(round(a) + 1)
        box.find(hi).text = str(max(round(b), round(a) + 1))


def convert(source: Path, out: Path, scale: int = SCALE, seed: int = 0) -> Path:
    """Write the variant of ``source`` (a VOCdevkit folder) into ``out``/VOC2007; returns ``out``."""
    src, dst = source / "VOC2007", out / "VOC2007"
    if (dst / "done").is_file():
        return out
    if out.resolve().is_relative_to(REPO):
        raise SystemExit(f"{out} is inside the repository: write data elsewhere (e.g. /tmp/voc-small)")
    (dst / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (dst / "Annotations").mkdir(exist_ok=True)
    shutil.copytree(src / "ImageSets", dst / "ImageSets", dirs_exist_ok=True)
    ids = sorted({i for f in (src / "ImageSets" / "Main").glob("*.txt") for i in f.read_text().split()})
    rng = np.random.default_rng(seed)
    for image_id in tqdm(ids, desc="small objects", unit="img"):
        image = cv2.imread(str(src / "JPEGImages" / f"{image_id}.jpg"))
        h, w = image.shape[:2]
        small = cv2.resize(image, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
        ox, oy = int(rng.integers(0, w - small.shape[1] + 1)), int(rng.integers(0, h - small.shape[0] + 1))
        canvas = np.full_like(image, GRAY)
        canvas[oy:oy + small.shape[0], ox:ox + small.shape[1]] = small
        cv2.imwrite(str(dst / "JPEGImages" / f"{image_id}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
        tree = ET.parse(src / "Annotations" / f"{image_id}.xml")
        for box in tree.getroot().iter("bndbox"):
            shrink_box(box, scale, ox, oy)
        tree.write(dst / "Annotations" / f"{image_id}.xml")
    (dst / "done").write_text(f"scale {scale}, seed {seed}, from {source}\n")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=DATA / "VOCdevkit", help="a VOCdevkit folder")
    p.add_argument("--out", type=Path, default=Path("/tmp/voc-small"), help="where the variant goes")
    p.add_argument("--scale", type=int, default=SCALE)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(convert(args.source, args.out, args.scale, args.seed))


if __name__ == "__main__":
    main()
