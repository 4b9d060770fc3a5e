"""Labelled training images from a VOCdevkit folder or an Ultralytics data yaml (torch-free).

Two sources give the same result, a :class:`SampleSet` of image paths with YOLO labels (``class cx cy w h``
normalised to the image):

* a **VOCdevkit** folder: every ``VOC<year>`` folder that has ``ImageSets/Main/<split>.txt`` (or the given
  ``years``); classes ``VOC_CLASSES``; boxes converted as YOLOv5's ``data/VOC.yaml`` does
  (``cx = (xmin + xmax) / 2 - 1``, ``w = xmax - xmin``, divided by the XML size) and difficult objects left
  out of the targets.
* an **Ultralytics data yaml** (``path``, ``train``, ``val``, ``test``, ``names`` as a list or ``{id: name}``):
  ``path`` is relative to the yaml's folder (default: that folder) and each split entry relative to
  ``path``; an entry is a folder of images (searched recursively), a ``.txt`` list of image paths (relative
  lines are relative to the list's folder) or a list of those. An image's labels are at the Ultralytics
  place: the last ``/images/`` of its path replaced by ``/labels/`` and the suffix by ``.txt``; a missing
  label file means an image without objects; a row repeated in a label file counts once.

Every image is decoded once while loading, on a few threads, to find the unusable ones. A missing or
undecodable image, a malformed label file or XML, or a class id out of range skips that image: one warning
line on stderr and an ``(item, reason)`` entry in ``SampleSet.skipped``. A split without any usable image is
one AscendSlimError naming the data and the split.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml
from tqdm import tqdm

from ..classes import VOC_CLASSES
from ..errors import AscendSlimError
from ..imageio import IMAGE_SUFFIXES, read_image
from .voc import Annotation, VOCDataset, load_voc
from .yolo_txt import label_path, read_yolo_labels

_YEAR_DIR = re.compile(r"VOC(\d{4})")


class _Candidate(NamedTuple):
    """An image whose labels parsed, before its pixels are checked."""

    item: str  # how warnings name it: the VOC id or the image path
    image: Path
    labels: np.ndarray


@dataclass(frozen=True)
class Sample:
    """One training image and its targets."""

    image: Path
    labels: np.ndarray  # (N, 5) float32 [class, cx, cy, w, h] normalised to the image; difficult objects left out


@dataclass(frozen=True)
class LabelledImages:
    """Ground truth in the evaluation's terms (what ``ascend_slim.evaluation`` reads from a data set)."""

    class_names: tuple[str, ...]
    ids: list[str]
    annotations: dict[str, Annotation]  # 1-based pixel boxes (VOC convention)
    paths: dict[str, Path]

    def image_path(self, image_id: str) -> Path:
        return self.paths[image_id]


@dataclass
class SampleSet:
    """The usable images of one split, their class names, and what was skipped."""

    samples: list[Sample]
    names: tuple[str, ...]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    shapes: dict[Path, tuple[int, int]] = field(default_factory=dict, repr=False)  # image -> (height, width)
    voc_splits: list[VOCDataset] = field(default_factory=list, repr=False)  # the VOC lists read, if any

    def __len__(self) -> int:
        return len(self.samples)

    def eval_dataset(self) -> VOCDataset | LabelledImages:
        """These images as ground truth for ``ascend_slim.evaluation.evaluate(detector, dataset)``.

        A VOC split of one year is the real :class:`VOCDataset` (difficult objects kept, as the devkit scores
        them) limited to the usable images; several years or a YOLO-txt set give :class:`LabelledImages` with
        labels converted back to 1-based pixel boxes (difficult all False for YOLO txt).
        """
        usable = {s.image for s in self.samples}
        if self.voc_splits:
            kept = [(ds, i) for ds in self.voc_splits for i in ds.ids if ds.image_path(i) in usable]
            if len(self.voc_splits) == 1:
                ds = self.voc_splits[0]
                ids = [i for _, i in kept]
                return replace(ds, ids=ids, annotations={i: ds.annotations[i] for i in ids},
                               skipped=list(self.skipped))
            return LabelledImages(self.names, [i for _, i in kept],
                                  {i: ds.annotations[i] for ds, i in kept}, {i: ds.image_path(i) for ds, i in kept})
        ids = _unique_ids([s.image for s in self.samples])
        annotations, paths = {}, {}
        for image_id, sample in zip(ids, self.samples):
            height, width = self.shapes.get(sample.image) or read_image(sample.image).shape[:2]
            annotations[image_id] = _annotation_from_yolo(sample.labels, width, height)
            paths[image_id] = sample.image
        return LabelledImages(self.names, ids, annotations, paths)


def yolo_labels_from_voc(ann: Annotation) -> np.ndarray:
    """``(N, 5)`` YOLO rows of the non-difficult objects, converted as YOLOv5's ``data/VOC.yaml``."""
    boxes, keep = ann.boxes, ~ann.difficult
    x1, y1, x2, y2 = boxes[keep].T
    rows = np.stack([ann.labels[keep].astype(np.float64), ((x1 + x2) / 2 - 1) / ann.width,
                     ((y1 + y2) / 2 - 1) / ann.height, (x2 - x1) / ann.width, (y2 - y1) / ann.height], axis=1)
    return rows.astype(np.float32).reshape(-1, 5)


def _annotation_from_yolo(labels: np.ndarray, width: int, height: int) -> Annotation:
    """The inverse of :func:`yolo_labels_from_voc`: 1-based pixel boxes, nothing difficult."""
    cls, cx, cy, w, h = labels.astype(np.float64).T
    cx, cy, w, h = cx * width + 1, cy * height + 1, w * width, h * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).reshape(-1, 4)
    return Annotation(boxes=boxes, labels=cls.astype(np.int64), difficult=np.zeros(len(cls), dtype=bool),
                      width=width, height=height)


def _unique_ids(paths: Sequence[Path]) -> list[str]:
    """Image ids for evaluation: file stems when they are unique, otherwise the full paths."""
    stems = [p.stem for p in paths]
    return stems if len(set(stems)) == len(stems) else [str(p) for p in paths]


# --------------------------------------------------------------------------- VOC


def _voc_years(root: Path, split: str, years: Sequence[str] | None) -> tuple[Path, list[str]]:
    """The VOCdevkit root and the years to read (a ``VOC<year>`` folder passed directly is one year)."""
    match = _YEAR_DIR.fullmatch(root.name)
    if match and (root / "Annotations").is_dir():
        return root.parent, [match.group(1)] if years is None else [str(y) for y in years]
    if years is not None:
        return root, [str(y) for y in years]
    found = sorted(m.group(1) for d in root.iterdir() if d.is_dir() and (m := _YEAR_DIR.fullmatch(d.name))
                   and (d / "ImageSets" / "Main" / f"{split}.txt").is_file())
    if not found:
        raise AscendSlimError(f"no VOC<year>/ImageSets/Main/{split}.txt in {root}: pass a VOCdevkit folder "
                              "(or an Ultralytics data yaml) and a split it has")
    return root, found


def _voc_candidates(root: Path, split: str, class_names: Sequence[str], years: Sequence[str] | None,
                    skipped: list[tuple[str, str]]) -> tuple[list[VOCDataset], list[_Candidate]]:
    root, years = _voc_years(root, split, years)
    splits, candidates = [], []
    for year in years:
        ds = load_voc(root, year=year, split=split, class_names=class_names)
        skipped.extend(ds.skipped)
        splits.append(ds)
        for image_id in ds.ids:
            ann = ds.annotations[image_id]
            candidates.append(_Candidate(image_id, ds.image_path(image_id), yolo_labels_from_voc(ann)))
    return splits, candidates


# --------------------------------------------------------------------------- Ultralytics data yaml


def _read_yaml(path: Path) -> dict:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise AscendSlimError(f"cannot read data yaml {path}: {e}") from None
    if not isinstance(config, dict):
        raise AscendSlimError(f"data yaml {path} is not a mapping with path/train/val/names keys")
    return config


def _yaml_names(config: dict, path: Path) -> tuple[str, ...]:
    names = config.get("names")
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise AscendSlimError(f"data yaml {path}: names keys must be the class ids 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise AscendSlimError(f"data yaml {path}: 'names' must be a non-empty list or {{id: name}} mapping")
    if "nc" in config and config["nc"] != len(names):
        raise AscendSlimError(f"data yaml {path}: nc is {config['nc']} but {len(names)} names are given")
    return tuple(str(n) for n in names)


def _list_images(entry: Path, yaml_path: Path) -> Iterator[Path]:
    """Image paths of one split entry: a folder (recursive), a ``.txt`` list, or one image."""
    if entry.is_dir():
        yield from sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    elif entry.is_file() and entry.suffix.lower() == ".txt":
        try:
            lines = entry.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as e:
            raise AscendSlimError(f"cannot read image list {entry}: {e}") from None
        yield from (entry.parent / line.strip() for line in lines if line.strip())
    elif entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
        yield entry
    else:
        raise AscendSlimError(f"data yaml {yaml_path}: {entry} is not a folder of images, a .txt list or an image")


def _yaml_candidates(path: Path, split: str, class_names: Sequence[str] | None,
                     skipped: list[tuple[str, str]]) -> tuple[tuple[str, ...], list[_Candidate]]:
    config = _read_yaml(path)
    names = _yaml_names(config, path)
    if class_names is not None and tuple(class_names) != names:
        raise AscendSlimError(f"data yaml {path} names {len(names)} classes {list(names)[:4]}..., "
                              f"not the {len(class_names)} requested; make them agree")
    if not config.get(split):
        raise AscendSlimError(f"data yaml {path} has no {split!r} entry (splits: train, val, test)")
    root = path.parent / str(config.get("path") or ".")
    entries = config[split] if isinstance(config[split], list) else [config[split]]
    images = list(dict.fromkeys(p for e in entries for p in _list_images(root / str(e), path)))
    candidates = []
    for image in images:
        try:
            labels = read_yolo_labels(label_path(image), nc=len(names))
        except AscendSlimError as e:
            skipped.append((str(image), str(e)))
            continue
        _, first = np.unique(labels, axis=0, return_index=True)  # repeated rows dropped, as Ultralytics does
        candidates.append(_Candidate(str(image), image, labels[np.sort(first)]))
    return names, candidates


# --------------------------------------------------------------------------- both


def _image_shape(path: Path) -> tuple[int, int] | str:
    """``(height, width)`` of a decodable image, or why it cannot be used."""
    try:
        return read_image(path).shape[:2]
    except AscendSlimError as e:
        return str(e)


def _decode_all(paths: Sequence[Path]) -> Iterable[tuple[int, int] | str]:
    """:func:`_image_shape` of every path, in order, on a few threads (decoding releases the GIL)."""
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        yield from tqdm(pool.map(_image_shape, paths), total=len(paths), desc="checking images", unit="img",
                        leave=False, disable=None)


DEFAULT_SPLITS = {"voc": ("trainval", "test"), "yaml": ("train", "val")}  # (training, validation)


def data_kind(data: str | Path) -> str:
    """``"voc"`` for a folder (a VOCdevkit, or one ``VOC<year>``), ``"yaml"`` for an Ultralytics data yaml."""
    path = Path(data)
    if path.is_dir():
        return "voc"
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        return "yaml"
    raise AscendSlimError(f"data {path} not found: pass a VOCdevkit folder or an Ultralytics data yaml")


def resolve_splits(data: str | Path, train_split: str = "", val_split: str = "") -> tuple[str, str]:
    """The training and validation split names: the given ones, else the defaults of ``data``'s kind
    (trainval/test for VOC, train/val for a yaml)."""
    if train_split and val_split:
        return train_split, val_split
    default_train, default_val = DEFAULT_SPLITS[data_kind(data)]
    return train_split or default_train, val_split or default_val


def load_samples(data: str | Path, split: str, class_names: Sequence[str] | None = None,
                 years: Sequence[str] | None = None) -> SampleSet:
    """Read one split of a VOCdevkit folder or an Ultralytics data yaml (see the module docstring).

    ``split`` is an ``ImageSets/Main`` list name (``trainval``, ``test``) for VOC, or a yaml key (``train``,
    ``val``, ``test``). ``class_names`` defaults to ``VOC_CLASSES`` for VOC; for a yaml it must equal the
    yaml's names when given. ``years`` (VOC only) defaults to every ``VOC<year>`` folder that has the split.
    """
    path = Path(data)
    skipped: list[tuple[str, str]] = []
    voc_splits: list[VOCDataset] = []
    if data_kind(path) == "voc":
        names = tuple(VOC_CLASSES if class_names is None else class_names)
        voc_splits, candidates = _voc_candidates(path, split, names, years, skipped)
    else:
        names, candidates = _yaml_candidates(path, split, class_names, skipped)

    samples, shapes = [], {}
    for c, shape in zip(candidates, _decode_all([c.image for c in candidates])):
        if isinstance(shape, str):
            skipped.append((c.item, shape))
        else:
            samples.append(Sample(c.image, c.labels))
            shapes[c.image] = shape
    for item, reason in skipped:
        print(f"warning: skipped {item}: {reason}", file=sys.stderr)
    if not samples:
        first = f", first: {skipped[0][1]}" if skipped else ""
        raise AscendSlimError(f"no usable image in {path} split {split!r}: {len(skipped)} skipped{first}")
    return SampleSet(samples, names, skipped, shapes, voc_splits)
