"""Checkpoints: safe import of official Ultralytics ``.pt`` files, and ascend-slim's own format.

Official YOLOv5 checkpoints pickle whole ``models.yolo.Model`` objects, so a plain ``torch.load`` would import
(and could run) code named by the file. Here they go through torch's own zip/storage machinery with a
restricted unpickler: only tensor/storage rebuilding, a few containers and the known YOLOv5/torch module class
names are resolved; the module classes map to inert placeholders whose pickled state is merely recorded. Any
other global is refused before anything is called.

ascend-slim checkpoints hold only plain data and tensors (spec, state dict, names, strides, anchors, image
size, history) and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import pickle
import types
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AscendSlimError
from ..fileio import atomic_output
from .spec import spec_from_yaml
from .yolo import YOLOv5

FORMAT = "ascend-slim"
FORMAT_VERSION = 1

def _latin1_encode(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (numpy arrays), limited to latin-1."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise AscendSlimError(f"checkpoint calls _codecs.encode with encoding {encoding!r}; refusing to load it")
    return text.encode("latin1")


# Callables that pickled tensors need; they only build tensors/containers from the arguments given.
_SAFE_CALLABLES: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("torch", "Size"): torch.Size,
    ("_codecs", "encode"): _latin1_encode,
}
# numpy arrays/scalars (e.g. ``best_fitness`` of unstripped training checkpoints), named as this numpy pickles them.
for _fn in (np.zeros(1).__reduce__()[0], np.float64(0).__reduce__()[0], np.ndarray, np.dtype):
    for _module in {_fn.__module__, _fn.__module__.replace("numpy._core", "numpy.core")}:
        _SAFE_CALLABLES[(_module, _fn.__name__)] = _fn
_SAFE_CALLABLES.update({("torch", name): getattr(torch, name) for name in (
    "float16", "float32", "float64", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")})

# Module classes found in YOLOv5 checkpoints v5.0 ... v7.0; mapped to placeholders, never imported.
_MODULE_CLASSES = frozenset({
    "models.yolo.Model", "models.yolo.DetectionModel", "models.yolo.Detect",
    "models.common.Conv", "models.common.Bottleneck", "models.common.C3", "models.common.SPPF",
    "models.common.SPP", "models.common.Focus", "models.common.Concat",
    "torch.nn.modules.conv.Conv2d", "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.activation.SiLU", "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.upsampling.Upsample", "torch.nn.modules.container.Sequential",
    "torch.nn.modules.container.ModuleList",
})


_MODEL_CLASSES = ("models.yolo.Model", "models.yolo.DetectionModel")


class PickledObject:
    """Inert stand-in for an allowed class: unpickling only fills its ``__dict__``; ``kind`` names the class."""

    kind = ""

    def __repr__(self) -> str:
        return f"<pickled {self.kind}>"


_PLACEHOLDERS = {name: type(name.rsplit(".", 1)[1], (PickledObject,), {"kind": name}) for name in _MODULE_CLASSES}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; everything else raises AscendSlimError naming the global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_CALLABLES:
            return _SAFE_CALLABLES[(module, name)]
        placeholder = _PLACEHOLDERS.get(f"{module}.{name}")
        if placeholder is not None:
            return placeholder
        raise AscendSlimError(
            f"checkpoint refers to {module}.{name}, which is not part of a YOLOv5 checkpoint; refusing to load it "
            "(only official Ultralytics YOLOv5 v5.0-v7.0 and ascend-slim checkpoints are accepted)"
        )


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# The "pickle module" handed to torch.load: torch subclasses its Unpickler (adding only storage types).
restricted_pickle = types.SimpleNamespace(__name__="ascend_slim.restricted_pickle", Unpickler=RestrictedUnpickler,
                                          load=_restricted_load)


def read_checkpoint(path: str | Path) -> Any:
    """Unpickle a torch ``.pt`` file with the restricted unpickler (no code from the file runs)."""
    path = Path(path)
    if not path.is_file():
        raise AscendSlimError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", pickle_module=restricted_pickle, weights_only=False)
    except AscendSlimError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, KeyError,
            TypeError, AttributeError, IndexError) as exc:
        raise AscendSlimError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None


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


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _import_ultralytics(ckpt: dict, path: Path) -> tuple[YOLOv5, dict]:
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
    model = YOLOv5(spec)
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
    model.history = [{"action": "import", "source": path.name, "format": "ultralytics", "weights": which,
                      "sha256": _file_sha256(path)}]
    info = {"names": list(model.names), "img_size": img_size, "history": list(model.history),
            "source_format": "ultralytics", "weights": which, "epoch": ckpt.get("epoch")}
    return model, info


def _load_own(ckpt: dict, path: Path) -> tuple[YOLOv5, dict]:
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise AscendSlimError(f"{path}: ascend-slim checkpoint format {ckpt.get('format_version')} is not supported "
                              f"(this version reads {FORMAT_VERSION})")
    model = YOLOv5.from_spec(ckpt["spec"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise AscendSlimError(f"{path}: state dict does not fit its spec ({exc})") from None
    model.float().eval()
    model.history = list(ckpt.get("history", []))
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
            return _import_ultralytics(ckpt, path)
        except (AttributeError, TypeError, KeyError, ValueError, IndexError) as exc:
            raise AscendSlimError(f"{path}: malformed YOLOv5 checkpoint ({type(exc).__name__}: {exc})") from None
    raise AscendSlimError(f"{path} is neither an Ultralytics YOLOv5 nor an ascend-slim checkpoint")


def save_checkpoint(path: str | Path, model: YOLOv5, img_size: int = 640, history: list[dict] | None = None) -> Path:
    """Write an ascend-slim checkpoint atomically (plain data + fp32 tensors; ``torch.load(weights_only=True)``).

    ``history`` defaults to ``model.history``.
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
    with atomic_output(path) as tmp:
        torch.save(ckpt, tmp)
    return path
