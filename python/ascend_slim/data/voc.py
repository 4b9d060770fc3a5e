"""Pascal VOC data set layout and safe annotation parsing.

Layout (``root`` is the ``VOCdevkit`` folder)::

    VOC<year>/ImageSets/Main/<split>.txt   image ids, one per line
    VOC<year>/Annotations/<id>.xml         size, objects (name, difficult, 1-based bndbox)
    VOC<year>/JPEGImages/<id>.jpg

XML goes through ``defusedxml`` with DTDs forbidden, so entity expansion ("billion laughs") and external
entities are refused instead of expanded.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np

from ..classes import VOC_CLASSES
from ..errors import AscendSlimError
from ..imageio import read_image_set, read_image_size


@dataclass(frozen=True)
class Annotation:
    """Ground truth of one image, coordinates exactly as in the XML (1-based, inclusive pixels)."""

    boxes: np.ndarray  # (M, 4) float64 xmin, ymin, xmax, ymax
    labels: np.ndarray  # (M,) int64 indices into the data set's class names
    difficult: np.ndarray  # (M,) bool
    width: int
    height: int


@dataclass
class VOCDataset:
    """The usable images of one split: ids in list order, their annotations, and what was skipped."""

    year_dir: Path
    split: str
    class_names: tuple[str, ...]
    ids: list[str]
    annotations: dict[str, Annotation]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image id, reason)

    def image_path(self, image_id: str) -> Path:
        return self.year_dir / "JPEGImages" / f"{image_id}.jpg"

    @property
    def num_objects(self) -> int:
        return sum(len(a.labels) for a in self.annotations.values())

    @property
    def num_difficult(self) -> int:
        return sum(int(a.difficult.sum()) for a in self.annotations.values())


def _text(node: ET.Element, tag: str, path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise AscendSlimError(f"malformed annotation {path}: <{tag}> missing or empty")
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: Path) -> float:
    text = _text(node, tag, path)
    try:
        value = float(text)
    except ValueError:
        raise AscendSlimError(f"malformed annotation {path}: <{tag}> is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise AscendSlimError(f"malformed annotation {path}: <{tag}> is {text!r}")
    return value


def parse_annotation(path: Path, class_index: dict[str, int]) -> Annotation:
    """Parse one VOC XML file; raises AscendSlimError naming the file for anything unusable.

    Refused: XML that does not parse or declares a DTD/entities, a missing or non-positive size, an object
    whose class is not in ``class_index``, and a box that is empty or outside ``[1, width] x [1, height]``.
    """
    try:
        root = SafeET.parse(path, forbid_dtd=True).getroot()
    except (ET.ParseError, defusedxml.DefusedXmlException) as e:
        raise AscendSlimError(f"malformed annotation {path}: {type(e).__name__}: {e}") from None
    except OSError as e:
        raise AscendSlimError(f"cannot read annotation {path}: {e}") from None
    size = root.find("size")
    if size is None:
        raise AscendSlimError(f"malformed annotation {path}: <size> missing")
    width, height = _number(size, "width", path), _number(size, "height", path)
    if width < 1 or height < 1 or width != int(width) or height != int(height):
        raise AscendSlimError(f"malformed annotation {path}: image size {width}x{height} is not valid")
    boxes, labels, difficult = [], [], []
    for obj in root.iter("object"):
        name = _text(obj, "name", path)
        if name not in class_index:
            raise AscendSlimError(f"annotation {path} has unknown class {name!r}")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise AscendSlimError(f"malformed annotation {path}: object {name!r} has no <bndbox>")
        box = [_number(bndbox, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax")]
        x1, y1, x2, y2 = box
        if not (1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height):
            raise AscendSlimError(
                f"annotation {path}: {name!r} box {box} is empty or outside the {int(width)}x{int(height)} image"
            )
        flag = obj.find("difficult")
        boxes.append(box)
        labels.append(class_index[name])
        difficult.append(flag is not None and (flag.text or "0").strip() not in ("", "0"))
    return Annotation(
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        difficult=np.asarray(difficult, dtype=bool),
        width=int(width),
        height=int(height),
    )


def _year_dir(root: Path, year: str) -> Path:
    """``root/VOC<year>``; a ``VOC<year>`` folder passed directly is accepted too."""
    if not root.is_dir():
        raise AscendSlimError(f"VOC root not found: {root} (pass the VOCdevkit folder that contains VOC{year}/)")
    year_dir = root / f"VOC{year}"
    if not year_dir.is_dir() and root.name == f"VOC{year}":
        year_dir = root
    if not year_dir.is_dir():
        raise AscendSlimError(f"VOC year folder not found: {year_dir} (pass the VOCdevkit folder, or set --year)")
    for sub in ("Annotations", "JPEGImages"):
        if not (year_dir / sub).is_dir():
            raise AscendSlimError(f"VOC folder {year_dir / sub} not found: {year_dir} is not a VOC data set")
    return year_dir


def load_voc(
    root: str | Path,
    year: str = "2007",
    split: str = "test",
    class_names: Sequence[str] = VOC_CLASSES,
    strict: bool = False,
) -> VOCDataset:
    """Read the ``split`` list of ``root/VOC<year>`` and parse its annotations.

    Default mode skips an image whose XML or JPEG is missing, whose XML is unusable (see
    :func:`parse_annotation`) or whose JPEG header gives another size than the XML, and records ``(id, reason)``
    in ``skipped``; ``strict=True`` raises
    AscendSlimError at the first such problem. Missing folders, a missing or empty list, and a split with
    no usable image always raise.
    """
    year_dir = _year_dir(Path(root), str(year))
    list_path = year_dir / "ImageSets" / "Main" / f"{split}.txt"
    class_index = {name: i for i, name in enumerate(class_names)}
    ids: list[str] = []
    annotations: dict[str, Annotation] = {}
    skipped: list[tuple[str, str]] = []
    for image_id in read_image_set(list_path):
        xml_path = year_dir / "Annotations" / f"{image_id}.xml"
        image_path = year_dir / "JPEGImages" / f"{image_id}.jpg"
        try:
            if image_id in annotations:
                raise AscendSlimError(f"image id {image_id} is listed twice in {list_path}")
            if not xml_path.is_file():
                raise AscendSlimError(f"annotation missing: {xml_path}")
            if not image_path.is_file():
                raise AscendSlimError(f"image missing: {image_path}")
            annotation = parse_annotation(xml_path, class_index)
            size = read_image_size(image_path)  # header only; an unreadable one is left to the decoder
            if size is not None and size != (annotation.height, annotation.width):
                raise AscendSlimError(f"image {image_path} is {size[1]}x{size[0]} but {xml_path.name} says "
                                      f"{annotation.width}x{annotation.height}")
            annotations[image_id] = annotation
        except AscendSlimError as e:
            if strict:
                raise AscendSlimError(f"{e} (strict mode stops at the first problem)") from None
            skipped.append((image_id, str(e)))
            continue
        ids.append(image_id)
    if not ids:
        raise AscendSlimError(f"no usable image in {list_path}: all {len(skipped)} skipped, first: {skipped[0][1]}")
    return VOCDataset(year_dir, split, tuple(class_names), ids, annotations, skipped)
