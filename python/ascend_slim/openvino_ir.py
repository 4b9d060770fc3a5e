"""The OpenVINO IR as ascend-slim reads and writes it: an ``.xml`` + ``.bin`` pair with the model facts in its
``rt_info`` under ``ascend_slim`` (the key/values of an ONNX export's ``metadata_props``, :func:`set_ir_meta`).

Torch-free and imported by the export, the OpenVINO backend and NNCF quantization alike; ``openvino`` itself is
imported only when a model is read or written (the ``openvino`` extra, :func:`import_openvino`).
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any

from .errors import AscendSlimError
from .fileio import temporary_folder
from .meta import META_KEY_PREFIX, ModelMeta

EXTRA_HINT = "install the OpenVINO extra: pip install 'ascend-slim[openvino]'"
RT_INFO_SECTION = "ascend_slim"  # IR rt_info section that holds the model facts
IR_SUFFIX = ".xml"


def import_openvino() -> Any:
    """The ``openvino`` module, or a one-line error naming the extra to install."""
    try:
        import openvino
    except ImportError:
        raise AscendSlimError(f"the OpenVINO runtime is not installed: {EXTRA_HINT}") from None
    return openvino


@functools.cache
def openvino_core() -> Any:
    """The process's one ``openvino.Core`` (OpenVINO's advice: every model read and compiled through it lives as
    long as the process, so no compiled model outlives the core that loaded its plugin)."""
    return import_openvino().Core()


def first_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO exception (it prefixes each message with 'Exception from <file>')."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("Exception from")]
    return lines[0] if lines else type(exc).__name__


def _check_ir_files(xml: Path) -> None:
    """Refuse an IR whose ``.xml`` is missing or not an IR document, or whose ``.bin`` is missing or empty, before
    OpenVINO tries every frontend on it."""
    from defusedxml import ElementTree

    if not xml.is_file():
        raise AscendSlimError(f"model not found: {xml} (pass an OpenVINO .xml written by `ascend-slim export "
                              "--format openvino`)")
    try:
        root = ElementTree.parse(str(xml)).getroot()
    except Exception as exc:  # ParseError, and defusedxml's refusals of entity tricks
        raise AscendSlimError(f"{xml} is not a readable OpenVINO IR ({exc}): export it again with "
                              "`ascend-slim export --format openvino`") from None
    if root.tag != "net":
        raise AscendSlimError(f"{xml} is XML but not an OpenVINO IR (root <{root.tag}>, expected <net>): export it "
                              "again with `ascend-slim export --format openvino`")
    weights = xml.with_suffix(".bin")
    if not weights.is_file() or weights.stat().st_size == 0:
        state = "is empty" if weights.is_file() else "is missing"
        raise AscendSlimError(f"the weights file {weights} of {xml.name} {state}: keep the .bin beside the .xml "
                              "(both come from `ascend-slim export --format openvino`)")


def read_model(path: str | Path) -> tuple[Any, ModelMeta]:
    """Read an IR ``.xml`` (checked first, see :func:`_check_ir_files`) or an ascend-slim ``.onnx`` into an
    ``openvino.Model`` and its model facts."""
    import_openvino()  # a missing extra is the first thing said
    path = Path(path)
    onnx_input = path.suffix.lower() == ".onnx"
    if onnx_input:
        if not path.is_file():
            raise AscendSlimError(f"model not found: {path}")
    elif path.suffix.lower() == IR_SUFFIX:
        _check_ir_files(path)
    else:
        raise AscendSlimError(f"OpenVINO runs an IR .xml or an .onnx, not {path.name}")
    try:
        model = openvino_core().read_model(str(path))
    except RuntimeError as exc:
        raise AscendSlimError(f"OpenVINO cannot read {path}: {first_line(exc)}") from None
    if onnx_input:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        meta = ModelMeta.from_props({p.key: p.value for p in proto.metadata_props}, source=str(path))
    else:
        meta = ir_meta(model, str(path))
    return model, meta


def ir_meta(model: Any, source: str) -> ModelMeta:
    """The model facts stored in ``model``'s ``rt_info`` by :func:`set_ir_meta`."""
    props = {}
    if model.has_rt_info([RT_INFO_SECTION]):
        for key in model.get_rt_info([RT_INFO_SECTION]).astype(dict):
            props[META_KEY_PREFIX + key] = model.get_rt_info([RT_INFO_SECTION, key]).astype(str)
    return ModelMeta.from_props(props, source=source)


def set_ir_meta(model: Any, meta: ModelMeta) -> None:
    """Store ``meta`` in ``model``'s ``rt_info`` (one entry per ``ModelMeta.to_props`` key, prefix dropped)."""
    for key, value in meta.to_props().items():
        model.set_rt_info(value, [RT_INFO_SECTION, key[len(META_KEY_PREFIX):]])


def save_ir(model: Any, meta: ModelMeta, path: str | Path) -> Path:
    """Write ``model`` with the facts ``meta`` as the IR ``path`` (``.xml``) and its ``.bin``, weights in FP32.

    Both files are built in a temporary folder beside ``path`` and renamed into place, the ``.bin`` first: a failure
    while writing leaves no IR behind (and an earlier IR of that name untouched).
    """
    ov = import_openvino()
    path = Path(path)
    if path.suffix.lower() != IR_SUFFIX:
        raise AscendSlimError(f"an OpenVINO IR is written as a .xml file (its weights beside it as .bin), not {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    set_ir_meta(model, meta)
    folder = temporary_folder(path.parent, f".{path.stem}.")
    try:
        ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)
        os.replace(folder / "model.bin", path.with_suffix(".bin"))
        os.replace(folder / "model.xml", path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def convert_onnx(onnx_path: str | Path, path: str | Path) -> Path:
    """The ascend-slim ONNX export ``onnx_path`` as the OpenVINO IR ``path``, its facts carried over with a history
    entry (the graph is OpenVINO's own import of the ONNX, FP32)."""
    ov = import_openvino()
    model, meta = read_model(onnx_path)
    meta.history.append({"action": "convert_openvino", "source": Path(onnx_path).name,
                         "openvino": ov.get_version().split("-")[0]})
    return save_ir(model, meta, path)
