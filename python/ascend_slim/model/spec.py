"""Ultralytics YOLOv5 yaml -> explicit architecture spec (every conv width spelled out, repeats expanded).

A spec is a plain JSON-able dict::

    {"nc": 80, "names": [...], "anchors": [[[10, 13], ...], ...]  (pixels, one row per Detect level),
     "layers": [{"type": "Conv", "from": -1, "c2": 16, "k": 6, "s": 2, "p": 2},
                {"type": "C3", "from": -1, "cv1": 16, "cv2": 16, "cv3": 32, "m": [{"cv1": 16, "cv2": 16}],
                 "shortcut": True}, ...,
                {"type": "Detect", "from": [17, 20, 23]}]}

Layer types: Conv(c2, k, s, p), Focus(c2, k, s, p), C3(cv1, cv2, cv3, m, shortcut), SPPF(cv1, cv2, k),
SPP(cv1, cv2, k list), Upsample(scale, mode), Concat(from list, dim), Detect(from list).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml

from ..classes import COCO_CLASSES
from ..errors import AscendSlimError
from ..resources import resource_dir


def make_divisible(x: float, divisor: int = 8) -> int:
    """Smallest multiple of ``divisor`` >= ``x`` (Ultralytics width rounding)."""
    return math.ceil(x / divisor) * divisor


def read_yaml(cfg: str | Path | dict) -> dict:
    """A model yaml as a dict: a dict as is, a file path, or a shipped name such as ``"yolov5s"``."""
    if isinstance(cfg, dict):
        return copy.deepcopy(cfg)
    path = Path(cfg)
    if not path.is_file():
        shipped = resource_dir("yolov5") / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
        if not shipped.is_file():
            available = ", ".join(sorted(p.stem for p in resource_dir("yolov5").glob("*.yaml")))
            raise AscendSlimError(f"model config {cfg} not found: pass a yaml path or one of {available}")
        path = shipped
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AscendSlimError(f"model config {path} is not valid yaml ({exc})") from None
    if not isinstance(data, dict):
        raise AscendSlimError(f"model config {path} is not a YOLOv5 model yaml (no mapping at top level)")
    return data


def default_names(nc: int) -> list[str]:
    """COCO names for 80 classes, else the Ultralytics default ``"0", "1", ...``."""
    return list(COCO_CLASSES) if nc == len(COCO_CLASSES) else [str(i) for i in range(nc)]


def _anchor_rows(anchors: Any, nl: int) -> list[list[list[float]]]:
    if isinstance(anchors, int) or not isinstance(anchors, list) or len(anchors) != nl:
        raise AscendSlimError(f"model yaml anchors must list {nl} rows of pixel pairs, got {anchors!r}")
    return [[[float(a[j]), float(a[j + 1])] for j in range(0, len(a), 2)] for a in anchors]


_ARG_TYPES = {  # the leading args each module needs: (name, accepted types); later args are optional
    "Conv": (("channels", int),), "Focus": (("channels", int),), "C3": (("channels", int),),
    "SPPF": (("channels", int),), "SPP": (("channels", int),), "Upsample": (("size", (type(None), int, str)),
                                                                         ("scale", (int, float)), ("mode", str)),
    "Concat": (), "Detect": (("nc", (int, str)), ("anchors", (int, str, list))),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_row(i: int, entry: Any) -> tuple[Any, int, str, list]:
    """A layer row ``[from, number, module, args]`` with every field's type checked (AscendSlimError naming the
    row and the field otherwise)."""
    def bad(what: str) -> AscendSlimError:
        return AscendSlimError(f"model yaml layer {i} {entry!r}: {what}")

    if not isinstance(entry, (list, tuple)) or len(entry) != 4:
        raise AscendSlimError(f"model yaml layer {i} is not [from, number, module, args]: {entry!r}")
    f, n, m, args = entry
    sources = f if isinstance(f, list) else [f]
    if not sources or not all(_is_int(x) and -(i + 1) <= x < i for x in sources):  # -1 at layer 0: the image
        raise bad(f"'from' must be an earlier layer's index (or a list of them), got {f!r}")
    if not _is_int(n) or n < 1:
        raise bad(f"the repeat count must be a positive integer, got {n!r}")
    if not isinstance(m, str):
        raise bad(f"the module must be a name such as Conv, got {m!r}")
    m = m.removeprefix("nn.")
    if m not in _ARG_TYPES:
        raise bad(f"module {m!r} is not supported by ascend-slim")
    if not isinstance(args, list):
        raise bad(f"args must be a list, got {args!r}")
    for j, (name, kinds) in enumerate(_ARG_TYPES[m]):
        if j >= len(args) or isinstance(args[j], bool) or not isinstance(args[j], kinds):
            raise bad(f"{m} args[{j}] ({name}) must be {_kind_names(kinds)}, got "
                      f"{args[j] if j < len(args) else 'nothing'!r}")
    if m in ("Conv", "Focus", "C3", "SPPF", "SPP") and args[0] < 1:
        raise bad(f"{m} channels must be positive, got {args[0]!r}")
    if m in ("Conv", "Focus") and not all(_is_int(a) and a > 0 for a in args[1:3]):
        raise bad(f"{m} kernel and stride must be positive integers, got {args[1:3]!r}")
    if m in ("Conv", "Focus") and len(args) > 3 and not (args[3] is None or (_is_int(args[3]) and args[3] >= 0)):
        raise bad(f"{m} padding must be null or an integer >= 0, got {args[3]!r}")
    if m == "SPPF" and len(args) > 1 and not (_is_int(args[1]) and args[1] > 0):
        raise bad(f"SPPF kernel must be a positive integer, got {args[1]!r}")
    if m == "SPP" and len(args) > 1 and not (isinstance(args[1], list) and all(_is_int(k) and k > 0 for k in args[1])):
        raise bad(f"SPP kernels must be a list of positive integers, got {args[1]!r}")
    takes_list = m in ("Concat", "Detect")
    if takes_list != isinstance(f, list):
        raise bad(f"'from' of {m} must be {'a list of layers' if takes_list else 'one layer'}, got {f!r}")
    return f, n, m, args


def _kind_names(kinds: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a name", list: "a list", type(None): "null"}
    return " or ".join(names[k] for k in (kinds if isinstance(kinds, tuple) else (kinds,)))


def _positive_number(d: dict, key: str) -> float:
    """``d[key]`` as a finite positive float (a depth or width multiple)."""
    value = d[key]
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    if not (math.isfinite(number) and number > 0):
        raise AscendSlimError(f"model yaml {key} must be a finite positive number, got {value!r}")
    return number


def _class_count(value: object) -> int:
    """The class count ``nc``: a positive whole number (a float like 20.0 is accepted)."""
    whole = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and value == int(value) and value >= 1
    if not whole:
        raise AscendSlimError(f"model yaml nc (the class count) must be a positive whole number, got {value!r}")
    return int(value)


def spec_from_yaml(cfg: str | Path | dict, nc: int | None = None, names: list[str] | None = None) -> dict:
    """Expand an Ultralytics YOLOv5 yaml (depth/width multiples) into an explicit spec.

    Follows Ultralytics ``parse_model``: repeats ``n > 1`` become ``max(round(n * depth_multiple), 1)``,
    widths become ``make_divisible(c * width_multiple, 8)``; C3 hidden width is half its output.
    """
    d = read_yaml(cfg)
    try:
        layers_in = list(d["backbone"]) + list(d["head"])
        gd, gw = (_positive_number(d, key) for key in ("depth_multiple", "width_multiple"))
    except (KeyError, TypeError) as exc:
        raise AscendSlimError(f"model yaml lacks {exc}: expected an Ultralytics YOLOv5 model yaml") from None
    if d.get("activation") not in (None, "nn.SiLU()"):
        raise AscendSlimError(f"model yaml activation {d['activation']!r} is not supported (only SiLU)")
    if names is not None:
        nc = len(names)
    nc = _class_count(nc if nc is not None else d.get("nc"))
    names = list(names) if names is not None else (list(d["names"]) if "names" in d and len(d["names"]) == nc
                                                   else default_names(nc))
    ch: list[int] = [3]
    layers: list[dict] = []
    anchors = None
    for i, entry in enumerate(layers_in):
        f, n, m, args = _checked_row(i, entry)
        n = max(round(n * gd), 1) if n > 1 else n
        if n > 1 and m != "C3":
            raise AscendSlimError(f"model yaml layer {i}: repeated {m} (n={n}) is not supported")
        c1 = ch[f if f < 0 else f + 1] if isinstance(f, int) else None  # ch[0] is the image

        def width(c: int) -> int:
            return make_divisible(c * gw, 8)

        if m in ("Conv", "Focus"):
            k, s = [*args[1:3], 1, 1][:2]
            p = args[3] if len(args) > 3 else None
            layer = {"type": m, "from": f, "c2": width(args[0]), "k": k, "s": s, "p": p}
            c2 = layer["c2"]
        elif m == "C3":
            c2 = width(args[0])
            c_ = int(c2 * 0.5)
            shortcut = bool(args[1]) if len(args) > 1 else True
            layer = {"type": "C3", "from": f, "cv1": c_, "cv2": c_, "cv3": c2,
                     "m": [{"cv1": c_, "cv2": c_} for _ in range(n)], "shortcut": shortcut}
        elif m in ("SPPF", "SPP"):
            c2 = width(args[0])
            k = args[1] if len(args) > 1 else (5 if m == "SPPF" else [5, 9, 13])
            layer = {"type": m, "from": f, "cv1": c1 // 2, "cv2": c2, "k": k}
        elif m == "Upsample":
            layer = {"type": "Upsample", "from": f, "scale": args[1], "mode": args[2]}
            c2 = c1
        elif m == "Concat":
            layer = {"type": "Concat", "from": list(f), "dim": args[0] if args else 1}
            c2 = sum(ch[x if x < 0 else x + 1] for x in f)
        else:  # Detect
            anchors = _anchor_rows(d["anchors"] if args[1] == "anchors" else args[1], len(f))
            layer = {"type": "Detect", "from": list(f)}
            c2 = 0
        layers.append(layer)
        ch.append(c2)
    if anchors is None or layers[-1]["type"] != "Detect":
        raise AscendSlimError("model yaml has no Detect layer at the end")
    return {"nc": nc, "names": names, "anchors": anchors, "layers": layers}
