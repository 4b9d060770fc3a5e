"""INT8 post-training quantization: onnxruntime static QDQ on the CPU (``static``, calibrated by ``calibration``)
and the AMCT route for Ascend (``amct``). This module itself imports nothing heavy, so the CLI can read it."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from ..errors import AscendSlimError

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_METHOD = "percentile"  # the most accurate on yolov5n/VOC (see the README's INT8 section)
DEFAULT_SPLIT = "trainval"  # calibration never uses the held-out test split


def float_layers(exclude: Iterable[str], names: Collection[str], convs: list[str], head: Iterable[str] = (),
                 first: Iterable[str] = (), *, kind: str = "node") -> list[str]:
    """The layers a quantizer keeps float: ``exclude`` (each must be one of the graph's ``names``; ``convs``, the
    graph's conv layer names, show how they are spelled), plus the ``head`` (Detect) and ``first`` (stem) convs."""
    exclude = [e for e in exclude if e]
    unknown = [e for e in exclude if e not in names]
    if unknown:
        raise AscendSlimError(f"{kind}(s) to keep float are not in the model: {', '.join(unknown)} "
                              f"(convolution {kind}s are named like {convs[0]!r})")
    return sorted({*exclude, *head, *first})
