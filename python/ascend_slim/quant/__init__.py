"""INT8 post-training quantization: onnxruntime static QDQ on the CPU, and the AMCT route for Ascend."""
