"""Training hyperparameters with YOLOv5's yaml keys; defaults are ``hyp.scratch-low.yaml`` (YOLOv5 v7.0).

A hyp is a plain ``dict[str, float]``. :func:`load_hyp` reads a YOLOv5 hyp yaml (or a dict), fills the keys it
does not set from :data:`DEFAULT_HYP`, and refuses unknown keys and out-of-range values, naming the key. The
loss gains (``box cls obj``) are the yaml's: :class:`ascend_slim.train.loss.YoloLoss` applies ``train.py``'s
scaling by levels, classes and image size itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import yaml

from ..data.augment import AUGMENT_HYP
from ..errors import AscendSlimError

Hyp = dict[str, float]
HypSource = Union[str, Path, Mapping[str, float], None]

# The loss and optimiser keys; the augmentation keys and values live in ``data.augment.AUGMENT_HYP``.
_LOSS_AND_OPTIMISER: Hyp = {
    "lr0": 0.01,  # initial learning rate (SGD 1e-2, Adam 1e-3)
    "lrf": 0.01,  # final learning rate as a fraction of lr0
    "momentum": 0.937,  # SGD momentum / Adam beta1
    "weight_decay": 0.0005,  # at the nominal batch of 64; scaled by batch * accumulate / 64
    "warmup_epochs": 3.0,  # fractions allowed; at least 100 iterations
    "warmup_momentum": 0.8,
    "warmup_bias_lr": 0.1,
    "box": 0.05,  # box loss gain
    "cls": 0.5,  # class loss gain
    "cls_pw": 1.0,  # class BCE positive weight
    "obj": 1.0,  # objectness loss gain (at 640 pixels)
    "obj_pw": 1.0,  # objectness BCE positive weight
    "iou_t": 0.20,  # IoU training threshold (unused by YOLOv5 v7.0's loss; kept for yaml compatibility)
    "anchor_t": 4.0,  # anchor-multiple threshold of the target assignment
    "fl_gamma": 0.0,  # focal loss gamma (0 = plain BCE)
    "label_smoothing": 0.0,  # a train.py flag in YOLOv5; accepted here as a hyp key
}
DEFAULT_HYP: Hyp = {
    **_LOSS_AND_OPTIMISER,
    **AUGMENT_HYP,
    "copy_paste": 0.0,  # needs segment labels: read for yaml compatibility, not applied
}

# Inclusive (low, high) bounds of every key; ``math.inf`` = unbounded above.
_RANGES: dict[str, tuple[float, float]] = {
    "lr0": (1e-12, 10.0), "lrf": (0.0, 1.0), "momentum": (0.0, 0.9999), "weight_decay": (0.0, 1.0),
    "warmup_epochs": (0.0, math.inf), "warmup_momentum": (0.0, 0.9999), "warmup_bias_lr": (0.0, 10.0),
    "box": (0.0, math.inf), "cls": (0.0, math.inf), "cls_pw": (1e-6, math.inf), "obj": (0.0, math.inf),
    "obj_pw": (1e-6, math.inf), "iou_t": (0.0, 1.0), "anchor_t": (1.0, math.inf), "fl_gamma": (0.0, 10.0),
    "hsv_h": (0.0, 1.0), "hsv_s": (0.0, 1.0), "hsv_v": (0.0, 1.0), "degrees": (0.0, 180.0),
    "translate": (0.0, 0.9), "scale": (0.0, 0.99), "shear": (0.0, 89.0), "perspective": (0.0, 0.001),
    "flipud": (0.0, 1.0), "fliplr": (0.0, 1.0), "mosaic": (0.0, 1.0), "mixup": (0.0, 1.0),
    "copy_paste": (0.0, 1.0), "label_smoothing": (0.0, 1.0),
}
# Keys of YOLOv5 hyp files that ascend-slim reads but does not use (AutoAnchor is not run: anchors come from
# the model).
IGNORED_KEYS = ("anchors",)


def load_hyp(source: HypSource = None, **overrides: float) -> Hyp:
    """The hyp dict from a YOLOv5 hyp yaml path, a mapping or ``None`` (defaults), then ``overrides``.

    Raises AscendSlimError for an unreadable file, an unknown key or a value outside its range.
    """
    where = "hyp"
    if source is None:
        given: Mapping[str, object] = {}
    elif isinstance(source, Mapping):
        given = source
    else:
        where = str(source)
        try:
            given = yaml.safe_load(Path(source).read_text()) or {}
        except FileNotFoundError:
            raise AscendSlimError(f"hyp file {source} not found") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise AscendSlimError(f"hyp file {source} is not readable YAML ({type(exc).__name__})") from None
        if not isinstance(given, Mapping):
            raise AscendSlimError(f"hyp file {source} must be a mapping of YOLOv5 hyp keys, got "
                                  f"{type(given).__name__}")
    hyp = dict(DEFAULT_HYP)
    for key, value in {**given, **overrides}.items():
        if key in IGNORED_KEYS:
            continue
        if key not in DEFAULT_HYP:
            raise AscendSlimError(f"{where}: unknown hyperparameter {key!r} (YOLOv5 keys: {', '.join(DEFAULT_HYP)})")
        hyp[key] = _checked(key, value, where)
    return hyp


def _as_number(value: object) -> float | None:
    """``value`` as a float, also a string such as ``"1e-3"`` (YAML 1.1, which PyYAML follows, reads exponents
    without a dot as strings); None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _checked(key: str, value: object, where: str) -> float:
    number = _as_number(value)
    if number is None or not math.isfinite(number):
        raise AscendSlimError(f"{where}: {key} must be a finite number, got {value!r}")
    low, high = _RANGES[key]
    if not low <= number <= high:
        raise AscendSlimError(f"{where}: {key}={value} is outside [{low:g}, {high:g}]")
    return number
