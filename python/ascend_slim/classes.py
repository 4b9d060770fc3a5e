"""Class-name tables: COCO-80 (Ultralytics order), Pascal VOC-20, and the exact COCO -> VOC map."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import AscendSlimError

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

# VOC name -> COCO name where they differ; the other 14 VOC classes share the COCO name.
VOC_TO_COCO_RENAMES: dict[str, str] = {
    "aeroplane": "airplane",
    "motorbike": "motorcycle",
    "diningtable": "dining table",
    "pottedplant": "potted plant",
    "sofa": "couch",
    "tvmonitor": "tv",
}


def coco_name_for_voc(voc_name: str) -> str:
    """The COCO class name that corresponds to a VOC class name."""
    return VOC_TO_COCO_RENAMES.get(voc_name, voc_name)


def class_map(model_names: Sequence[str], target_names: Sequence[str] = VOC_CLASSES) -> list[int]:
    """For each target class, the index of the matching model class.

    A model whose names equal the target's maps 1:1; a COCO model maps to VOC through the exact
    renames above. Raises AscendSlimError naming the first class that matches neither.
    """
    index = {name: i for i, name in enumerate(model_names)}
    mapping = []
    for name in target_names:
        i = index.get(name, index.get(coco_name_for_voc(name)))
        if i is None:
            raise AscendSlimError(
                f"model classes do not cover class {name!r}: the model has {len(model_names)} classes "
                f"({', '.join(list(model_names)[:5])}, ...); use a COCO or VOC model"
            )
        mapping.append(i)
    return mapping


def resolve_class_set(spec: str) -> tuple[str, ...]:
    """A named class set: ``"voc"`` or ``"coco"``."""
    sets = {"voc": VOC_CLASSES, "coco": COCO_CLASSES}
    if spec not in sets:
        raise AscendSlimError(f"unknown class set {spec!r}: choose one of {', '.join(sets)}")
    return sets[spec]
