"""Helpers of the training tests: a VOCdevkit whose split lists a few of the shared images (links, no copies)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ascend_slim.train import TrainConfig


def voc_subset(folder: Path, voc_root: Path, count: int, split: str = "trainval") -> Path:
    """A VOCdevkit in ``folder`` whose split ``subset`` holds the first ``count`` ids of the shared ``split``."""
    source = voc_root / "VOC2007"
    year = folder / "VOC2007"
    (year / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for name in ("Annotations", "JPEGImages"):
        link = year / name
        if not link.exists():
            link.symlink_to(source / name, target_is_directory=True)
    ids: Sequence[str] = (source / "ImageSets" / "Main" / f"{split}.txt").read_text().split()[:count]
    (year / "ImageSets" / "Main" / "subset.txt").write_text("\n".join(ids) + "\n")
    return folder


def small_config(data: Path, weights: Path, save_dir: Path, **overrides: object) -> TrainConfig:
    """yolov5n remapped to VOC, trained and validated on the ``subset`` split at 160 pixels, batch 2, CPU."""
    options = dict(data=str(data), weights=str(weights), classes="voc", train_split="subset", val_split="subset",
                   epochs=3, batch_size=2, img_size=160, device="cpu", workers=0, seed=0, save_dir=str(save_dir))
    options.update(overrides)
    return TrainConfig(**options)
