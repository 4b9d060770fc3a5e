#!/usr/bin/env bash
# Convert the ONNX model to an Ascend .om with ATC. Run on a machine with the CANN toolkit:
#   source /usr/local/Ascend/ascend-toolkit/set_env.sh
set -euo pipefail
cd "$(dirname "$0")"
atc \
    --framework=5 \
    --model=yolov5s.onnx \
    --output=yolov5s \
    --input_format=NCHW \
    --input_shape=images:1,3,512,512 \
    --insert_op_conf=aipp_yolov5.cfg \
    --soc_version=Ascend310 \
    --output_type=FP32 \
    --enable_small_channel=1
