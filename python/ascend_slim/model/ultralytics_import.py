"""Import of official Ultralytics YOLOv5 checkpoints (v5.0 ... v7.0) into ascend-slim's :class:`YOLOv5`.

The file is read by :mod:`.safe_pickle` (no code from it runs); the pickled modules are inert placeholders whose
recorded parameters and buffers are mapped 1:1 onto a model built from the checkpoint's own yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import AscendSlimError
from ..fileio import file_sha256
from .safe_pickle import PickledObject
from .spec import spec_from_yaml
from .yolo import YOLOv5

_MODEL_CLASSES = ("models.yolo.Model", "models.yolo.DetectionModel")


def _state(obj: Any, key: str, default: Any = None) -> Any:
    return obj.__dict__.get(key, default) if isinstance(obj, PickledObject) else default


def _placeholder_state_dict(module: PickledObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict a pickled nn.Module would produce (persistent buffers only), read from its recorded state."""
    out: dict[str, torch.Tensor] = {}
    skip = _state(module, "_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in (_state(module, group) or {}).items():
            if tensor is not None and name not in skip:
                out[prefix + name] = tensor.detach()
    for name, child in (_state(module, "_modules") or {}).items():
        if isinstance(child, PickledObject):
            out.update(_placeholder_state_dict(child, f"{prefix}{name}."))
    return out


def import_ultralytics(ckpt: dict, path: Path) -> tuple[YOLOv5, dict]:
    """Build an ascend-slim model from an unpickled official checkpoint (EMA weights when present)."""
    which = "ema" if isinstance(ckpt.get("ema"), PickledObject) else "model"
    pickled = ckpt.get(which)
    if not isinstance(pickled, PickledObject) or pickled.kind not in _MODEL_CLASSES:
        raise AscendSlimError(f"{path} holds no YOLOv5 detection model under '{which}'")
    cfg = _state(pickled, "yaml")
    layers = _state(pickled, "_modules", {}).get("model")
    det_index, detect = list(_state(layers, "_modules", {"": None}).items())[-1]
    if not isinstance(cfg, dict) or not isinstance(detect, PickledObject) or detect.kind != "models.yolo.Detect":
        raise AscendSlimError(f"{path}: the pickled model lacks its yaml or Detect layer; not a YOLOv5 checkpoint")
    nc = int(_state(detect, "nc"))
    stride = _state(detect, "stride")
    if stride is None:
        stride = _state(pickled, "stride")
    names = _state(pickled, "names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    names = [str(n) for n in names] if names is not None and len(names) == nc else None
    weights = {k.removeprefix("model."): v for k, v in _placeholder_state_dict(layers, "model.").items()}
    anchors_grid = weights[f"{det_index}.anchors"].float()
    anchors_px = (anchors_grid * stride.float().view(-1, 1, 1)).tolist()
    spec = spec_from_yaml(cfg, nc=nc, names=names)
    spec["anchors"] = anchors_px
    history = [{"action": "import", "source": path.name, "format": "ultralytics", "weights": which,
                "sha256": file_sha256(path)}]
    model = YOLOv5(spec, history)
    expected = model.state_dict()
    state = {"model." + k: v for k, v in weights.items() if not k.endswith(".anchor_grid")}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise AscendSlimError(f"{path}: weights do not fit the model its yaml describes (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]})")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    model.float().eval()
    opt = ckpt.get("opt") if isinstance(ckpt.get("opt"), dict) else {}
    img_size = opt.get("imgsz", opt.get("img_size", 640))
    img_size = int(img_size[0] if isinstance(img_size, (list, tuple)) else img_size)
    info = {"names": list(model.names), "img_size": img_size, "history": list(model.history),
            "source_format": "ultralytics", "weights": which, "epoch": ckpt.get("epoch")}
    return model, info
