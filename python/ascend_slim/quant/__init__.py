"""INT8 post-training quantization: onnxruntime static QDQ on the CPU (``static``, calibrated by ``calibration``)
and the AMCT route for Ascend (``amct``). This module itself imports nothing heavy, so the CLI can read it."""

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_METHOD = "percentile"  # the most accurate on yolov5n/VOC (see the README's INT8 section)
DEFAULT_SPLIT = "trainval"  # calibration never uses the held-out test split
