"""Calibration images for static INT8 quantization, preprocessed exactly as ``eval`` feeds the model.

Images come from a folder or from a VOC image set (``trainval`` by default: the test split is what accuracy is
measured on, so it never calibrates). Each image goes through the C++ core's square letterbox at the model's
input size (``ascend_slim.core.preprocess``, the path ``Detector`` takes with ``rect=False``), so the activation
ranges onnxruntime records are those the deployed model sees.

:func:`compute_ranges` runs onnxruntime's calibrators a chunk of images at a time (memory stays flat) with
settings chosen for uint8 activations: asymmetric percentile ranges (onnxruntime's default is symmetric), and a
2048-bin histogram for the entropy (KL) search (``quantize_static``'s 128 bins leave a single candidate, the
min/max range, so its "entropy" equals minmax).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator
from tqdm import tqdm

from .. import core
from ..data.voc import load_voc
from ..errors import AscendSlimError
from ..imageio import list_sources, read_image
from ..meta import ModelMeta
from . import CALIBRATION_METHODS, DEFAULT_SPLIT

_HELD_OUT_SPLITS = ("test",)
# method -> (onnxruntime calibration method, calibrator options)
ORT_CALIBRATORS = {
    "minmax": (CalibrationMethod.MinMax, {}),
    "entropy": (CalibrationMethod.Entropy, {"num_bins": 2048, "num_quantized_bins": 128, "symmetric": False}),
    "percentile": (CalibrationMethod.Percentile, {"num_bins": 2048, "percentile": 99.999, "symmetric": False}),
}
CHUNK_BATCHES = 16  # calibration batches whose intermediate outputs are held at once


def _first(paths: Sequence[Path], num_images: int, where: str) -> list[Path]:
    if num_images < 1:
        raise AscendSlimError(f"the number of calibration images must be at least 1, got {num_images}")
    if len(paths) < num_images:
        raise AscendSlimError(f"{where} has {len(paths)} image(s), fewer than the {num_images} asked for: "
                              f"lower --num-images or add images")
    return list(paths[:num_images])


def folder_images(folder: str | Path, num_images: int) -> list[Path]:
    """The first ``num_images`` images of ``folder`` in name order; too few is an error that says how many."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AscendSlimError(f"calibration folder not found: {folder}")
    return _first(list_sources(folder), num_images, f"calibration folder {folder}")


def voc_images(root: str | Path, num_images: int, split: str = DEFAULT_SPLIT, year: str = "2007") -> list[Path]:
    """The first ``num_images`` usable images of a VOC image set (never the held-out test split)."""
    if split in _HELD_OUT_SPLITS:
        raise AscendSlimError(f"VOC split {split!r} is held out for accuracy figures and never calibrates: use "
                              f"{DEFAULT_SPLIT} (or another training split)")
    ds = load_voc(root, year=year, split=split)
    return _first([ds.image_path(i) for i in ds.ids], num_images, f"VOC{year} {split}")


class LetterboxCalibrationReader(CalibrationDataReader):
    """onnxruntime calibration data: ``images`` letterboxed to the model's square float32 input, a batch at a time.

    Batches have the model's static batch size (the last one is filled by repeating images from the start);
    ``set_range`` limits the reader to some of them.
    """

    def __init__(self, images: Sequence[str | Path], meta: ModelMeta, input_name: str, progress: bool = True) -> None:
        if not images:
            raise AscendSlimError("no calibration images given")
        self.images = [Path(p) for p in images]
        self.input_name = input_name
        self.img_size = meta.img_size
        self.stride = int(max(meta.strides))
        n, batch = len(self.images), meta.batch
        order = [i % n for i in range(-(-n // batch) * batch)]
        self.batches = [order[i:i + batch] for i in range(0, len(order), batch)]
        self._range = (0, len(self.batches))
        self._next = 0
        self._bar = tqdm(total=len(self.batches) * batch, desc="calibrate", unit="img", disable=not progress)

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._range = (start_index, min(end_index, len(self.batches)))
        self._next = start_index

    def tensor(self, batch: Sequence[int]) -> np.ndarray:
        """The float32 model input for images ``batch`` (indices into ``images``), as ``Detector`` makes it."""
        arrays = [read_image(self.images[i]) for i in batch]
        tensor, _, _ = core.preprocess(arrays, self.img_size, auto=False, stride=self.stride, dtype=np.float32)
        return tensor

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._range[1]:
            return None
        batch = self.batches[self._next]
        self._next += 1
        self._bar.update(len(batch))
        return {self.input_name: self.tensor(batch)}

    def close(self) -> None:
        self._bar.close()


def check_method(method: str) -> None:
    """Raise AscendSlimError unless ``method`` is one of :data:`~ascend_slim.quant.CALIBRATION_METHODS`."""
    if method not in CALIBRATION_METHODS:
        raise AscendSlimError(f"unknown calibration method {method!r}: choose {', '.join(CALIBRATION_METHODS)}")


def compute_ranges(model_path: str | Path, reader: LetterboxCalibrationReader, method: str, cache: str | Path) -> None:
    """Calibrate the activation ranges of ``model_path`` on ``reader``'s images and save them to ``cache`` (JSON).

    The file is what ``quantize_static(calibration_cache_path=...)`` reads (onnxruntime >= 1.27).
    """
    from onnxruntime.quantization.calibrate import save_tensors_data

    check_method(method)
    ort_method, options = ORT_CALIBRATORS[method]
    with tempfile.TemporaryDirectory(prefix="ascend-slim-calib-") as tmp:
        calibrator = create_calibrator(Path(model_path), augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=ort_method, extra_options=options)
        try:
            with redirect_stdout(io.StringIO()):  # the histogram calibrators print their progress
                for start in range(0, len(reader), CHUNK_BATCHES):
                    reader.set_range(start, start + CHUNK_BATCHES)
                    calibrator.collect_data(reader)
                ranges = calibrator.compute_data()
        finally:
            reader.close()
            del calibrator  # its inference session holds the augmented model
    save_tensors_data(ranges, cache)
