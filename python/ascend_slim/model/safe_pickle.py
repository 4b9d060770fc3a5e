"""Safe unpickling of ``.pt`` files: torch's zip/storage machinery with a restricted unpickler.

Official YOLOv5 checkpoints pickle whole ``models.yolo.Model`` objects, so a plain ``torch.load`` would import
(and could run) code named by the file. Here only tensor/storage rebuilding, a few containers and the known
YOLOv5/torch module class names are resolved; the module classes map to inert placeholders whose pickled state
is merely recorded. Any other global is refused before anything is called.
"""

from __future__ import annotations

import pickle
import types
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AscendSlimError


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
