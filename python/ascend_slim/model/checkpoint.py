"""ascend-slim's own checkpoint format, and :func:`load_weights` for any accepted ``.pt``.

ascend-slim checkpoints hold only plain data and tensors (spec, state dict, names, strides, anchors, image
size, history) and load with ``torch.load(weights_only=True)``. A training checkpoint also holds a
``training`` dict (the resumable state written by :mod:`ascend_slim.train.trainer`); its inference weights,
``state_dict``, are the EMA's. Official Ultralytics files are imported by
:mod:`.ultralytics_import` through the restricted unpickler of :mod:`.safe_pickle`.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from ..errors import AscendSlimError
from ..fileio import atomic_write_bytes
from .safe_pickle import PickledObject, read_checkpoint
from .ultralytics_import import import_ultralytics
from .yolo import YOLOv5

FORMAT = "ascend-slim"
FORMAT_VERSION = 1


def _load_own(ckpt: dict, path: Path) -> tuple[YOLOv5, dict]:
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise AscendSlimError(f"{path}: ascend-slim checkpoint format {ckpt.get('format_version')} is not supported "
                              f"(this version reads {FORMAT_VERSION})")
    model = YOLOv5.from_spec(ckpt["spec"], history=ckpt.get("history", []))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise AscendSlimError(f"{path}: state dict does not fit its spec ({exc})") from None
    model.float().eval()
    info = {"names": list(model.names), "img_size": int(ckpt.get("img_size", 640)), "history": list(model.history),
            "source_format": FORMAT}
    return model, info


def load_weights(path: str | Path) -> tuple[YOLOv5, dict]:
    """Load an official Ultralytics YOLOv5 ``.pt`` (v5.0 ... v7.0) or an ascend-slim checkpoint as an fp32 model.

    ``info``: ``names``, ``img_size``, ``history``, ``source_format`` (``"ultralytics"`` or ``"ascend-slim"``), and
    for official files ``weights`` (``"ema"`` or ``"model"``) and ``epoch``.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT:
        return _load_own(ckpt, path)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), PickledObject):
        try:
            return import_ultralytics(ckpt, path)
        except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
            raise AscendSlimError(f"{path}: malformed YOLOv5 checkpoint ({type(exc).__name__}: {exc})") from None
    raise AscendSlimError(f"{path} is neither an Ultralytics YOLOv5 nor an ascend-slim checkpoint")


def saved_img_size(path: str | Path) -> int | None:
    """The input size an ascend-slim checkpoint was saved for; None for other checkpoints (they record none)."""
    ckpt = read_checkpoint(Path(path))
    own = isinstance(ckpt, dict) and ckpt.get("format") == FORMAT
    return int(ckpt.get("img_size", 640)) if own else None


def stored_img_size(path: str | Path) -> int:
    """The input size a checkpoint was saved for (an ascend-slim checkpoint's ``img_size``; 640 for others)."""
    return saved_img_size(path) or 640


def save_checkpoint(path: str | Path, model: YOLOv5, img_size: int = 640, history: list[dict] | None = None,
                    training: dict | None = None) -> Path:
    """Write an ascend-slim checkpoint atomically (plain data + fp32 tensors; ``torch.load(weights_only=True)``).

    ``history`` defaults to ``model.history``. ``training``: resumable training state (plain data and tensors
    only), read back by :func:`load_training_state`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = model.spec
    ckpt = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec,
        "state_dict": {k: v.detach().float().cpu().clone() if v.is_floating_point() else v.detach().cpu().clone()
                       for k, v in model.state_dict().items()},
        "names": spec["names"], "strides": spec["strides"], "anchors": spec["anchors"], "img_size": int(img_size),
        "history": list(model.history if history is None else history),
    }
    if training is not None:
        ckpt["training"] = training
    write_checkpoint(path, ckpt)
    return path


def write_checkpoint(path: str | Path, ckpt: dict) -> None:
    """``torch.save(ckpt)`` to ``path`` atomically: the one checkpoint writer of the package.

    torch's zip writer reports a failed write as a RuntimeError without the OS's reason, so the checkpoint is
    serialised in memory and written by Python: a full disk or a file-size limit becomes an AscendSlimError
    naming ``path`` and the reason ("No space left on device", "File too large"), and no partial file stays.
    """
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    try:
        atomic_write_bytes(path, buffer.getbuffer())
    except OSError as exc:
        raise AscendSlimError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None


def load_training_state(path: str | Path) -> dict:
    """The ``training`` dict of an ascend-slim training checkpoint (read with ``weights_only=True``), with the
    checkpoint's inference (EMA) weights added as ``ema_weights``.

    Raises AscendSlimError when ``path`` is not an ascend-slim checkpoint or holds no training state (an
    inference checkpoint, or a run that finished).
    """
    path = Path(path)
    if not path.is_file():
        raise AscendSlimError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for foreign or corrupt files
        raise AscendSlimError(f"{path} is not an ascend-slim checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise AscendSlimError(f"{path} is not an ascend-slim checkpoint")
    if "training" not in ckpt:
        raise AscendSlimError(f"{path} holds no training state (finished run or inference weights): nothing to "
                              "resume; start a new run with --weights")
    return {**ckpt["training"], "ema_weights": ckpt["state_dict"]}
