"""Class remapping: keep only some classes of a detector by slicing its Detect output rows (exact, no training)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..classes import VOC_CLASSES, class_map, resolve_class_set
from .checkpoint import load_weights
from .yolo import YOLOv5


def remap_classes(model: YOLOv5, target_names: Sequence[str] = VOC_CLASSES) -> YOLOv5:
    """A new model predicting only ``target_names`` (e.g. COCO -> the 20 VOC classes, via the exact name map).

    Each Detect conv keeps, per anchor, the 4 box rows, the objectness row and the rows of the mapped classes,
    so box, objectness and class logits are the very same numbers as the source model's. Raises AscendSlimError
    when a target class has no match. The step is appended to ``history``.
    """
    source_index = class_map(model.names, target_names)
    spec = model.spec
    spec.update(nc=len(target_names), names=list(target_names))
    step = {"action": "remap_classes", "from_names": list(model.names), "to_names": list(target_names),
            "source_index": source_index}
    remapped = YOLOv5.from_spec(spec, history=[*model.history, step])
    d = model.detect
    rows = list(range(5)) + [5 + i for i in source_index]
    state = model.state_dict()
    prefix = f"model.{len(model.model) - 1}.m."
    for key, value in state.items():
        if key.startswith(prefix):  # weight [na*no, c, 1, 1] or bias [na*no]
            state[key] = value.view(d.na, d.no, *value.shape[1:])[:, rows].reshape(-1, *value.shape[1:]).clone()
    remapped.load_state_dict(state)
    return remapped.train(model.training)


def load_for_classes(weights: str | Path, classes: str | Sequence[str] = "") -> tuple[YOLOv5, dict]:
    """:func:`~.checkpoint.load_weights`, then the model remapped to ``classes`` (a class-set name such as
    ``"voc"``, or class names) when its own classes differ; ``""`` keeps them."""
    model, info = load_weights(weights)
    names = resolve_class_set(classes) if isinstance(classes, str) and classes else classes
    if names and list(model.names) != list(names):
        model = remap_classes(model, names)
    return model, info
