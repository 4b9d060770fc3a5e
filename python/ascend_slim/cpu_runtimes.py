"""The CPU runtimes a model can be slimmed for: what differs between them, behind one small interface.

A :class:`CpuRuntime` times models side by side on itself, quantizes a float ONNX export to INT8 with its own
quantizer (INT8 formats are runtime-specific: onnxruntime's QDQ runs slowly on OpenVINO and NNCF's IR does not run
on onnxruntime) and writes the final model in its own format. The slim recipe and ``report`` use it; the backend
that runs a file is still chosen by its suffix (:func:`~ascend_slim.runtime.factory.open_backend`).
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .errors import AscendSlimError
from .openvino_ir import EXTRA_HINT
from .runtime.factory import RUNTIMES

DEFAULT_RUNTIME = "onnxruntime"
DRAFT_CALIBRATION_IMAGES = 2  # an INT8 graph that is only timed (its speed does not depend on the ranges)


class CpuRuntime:
    """onnxruntime: ONNX files, INT8 as static QDQ (:func:`~ascend_slim.quant.static.quantize_model`)."""

    name = "onnxruntime"
    suffix = ".onnx"  # the format of its final and INT8 models
    module = "onnxruntime"  # the Python module that tells it is installed
    install = "pip install onnxruntime"

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def check_installed(self) -> None:
        if not self.installed:
            raise AscendSlimError(f"the {self.name} runtime is not installed: {self.install}")

    def measure_latency(self, models: Sequence[str | Path], threads: int = 1, runs: int = 20, warmup: int = 3,
                        img_size: int | None = None) -> list:
        """:func:`~ascend_slim.report.latency.measure_latency` on this runtime."""
        from .report.latency import measure_latency

        return measure_latency(models, threads=threads, runs=runs, warmup=warmup, img_size=img_size,
                               runtime=self.name)

    def quantize(self, float_onnx: str | Path, output: str | Path, images: Sequence[Path], draft: bool = False,
                 progress: bool = True):
        """INT8 of ``float_onnx`` at ``output`` calibrated on ``images``, stem and Detect convs float; ``draft``: a
        graph to time only, calibrated on :data:`DRAFT_CALIBRATION_IMAGES` images. Returns a QuantizeReport."""
        from .quant.static import quantize_model

        if draft:
            return quantize_model(float_onnx, output, images[:DRAFT_CALIBRATION_IMAGES], method="minmax",
                                  progress=False)
        return quantize_model(float_onnx, output, images, progress=progress)

    def deployable(self, float_onnx: str | Path, output: str | Path) -> Path:
        """The float model ``float_onnx`` in this runtime's format at ``output`` (a copy for onnxruntime)."""
        return Path(shutil.copyfile(float_onnx, output))


class OpenVinoRuntime(CpuRuntime):
    """OpenVINO: IR files, INT8 by NNCF (:func:`~ascend_slim.quant.openvino_int8.quantize_openvino`)."""

    name = "openvino"
    suffix = ".xml"
    module = "openvino"
    install = EXTRA_HINT

    def quantize(self, float_onnx: str | Path, output: str | Path, images: Sequence[Path], draft: bool = False,
                 progress: bool = True):
        import onnx

        from .quant.openvino_int8 import quantize_openvino
        from .quant.static import float_node_names

        images = images[:DRAFT_CALIBRATION_IMAGES] if draft else images
        report = quantize_openvino(float_onnx, output, images, progress=progress and not draft)
        # the same layers by their ONNX names, which the Ascend route (AMCT's skip_layers) takes
        return replace(report, float_nodes=float_node_names(onnx.load(str(float_onnx)), (), True, True))

    def deployable(self, float_onnx: str | Path, output: str | Path) -> Path:
        from .openvino_ir import convert_onnx

        return convert_onnx(float_onnx, output)


def cpu_runtime(name: str = DEFAULT_RUNTIME) -> CpuRuntime:
    """The runtime called ``name`` (one of :data:`RUNTIMES`), checked to be installed."""
    runtimes = {"onnxruntime": CpuRuntime, "openvino": OpenVinoRuntime}
    if name not in runtimes:
        raise AscendSlimError(f"unknown runtime {name!r}: choose {' or '.join(RUNTIMES)}")
    runtime = runtimes[name]()
    runtime.check_installed()
    return runtime

