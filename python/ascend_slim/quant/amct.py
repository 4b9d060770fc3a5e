"""The Ascend INT8 route: AMCT (Ascend Model Compression Toolkit, ``amct_onnx``) post-training quantization, then ATC.

**Not run on hardware**: no CANN toolkit, AMCT or Ascend device was available to this project. This module only
writes AMCT's *simplified calibration configuration* (protobuf text format, ``calibration_config_onnx.proto`` in
the AMCT install; fields as documented in the CANN "Simplified PTQ Configuration File" page), with the same
choices the CPU INT8 model was made with: the float nodes become ``skip_layers``, per-channel weights become
``arq_quantize { channel_wise }``, asymmetric uint8 activations ``activation_offset : true``, and ``batch_num`` is
the number of calibration batches. Activation ranges come from AMCT's own IFMR search (the documented defaults
below), not from onnxruntime's calibrators.

The route (see the README section "INT8 on Ascend"): on a CANN machine,
``amct_onnx calibration --model model.onnx --save_path out/model --input_shape "images:1,3,H,W"
--data_dir calib_bin/ --data_types float32 --calibration_config amct.cfg``, or in Python
``create_quant_config(config_file, model_file, skip_layers, batch_num, activation_offset, config_defination=cfg)``
-> ``quantize_model(config_file, model_file, modified_onnx_file, record_file)`` -> run the modified model in
onnxruntime (session options ``amct.AMCT_SO``) over ``batch_num`` batches fed by
:class:`~ascend_slim.quant.calibration.LetterboxCalibrationReader` -> ``save_model(modified_onnx_file, record_file,
save_path)``, which writes ``<save_path>_deploy_model.onnx`` (for ATC) and ``<save_path>_fake_quant_model.onnx``
(for accuracy checks in onnxruntime). The deploy model then goes through ``ascend-slim convert`` as a float export
does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from google.protobuf import text_encoding

from ..errors import AscendSlimError
from ..fileio import atomic_write_text

# IFMR activation search settings: the defaults of AMCT's documented simplified configuration.
IFMR_DEFAULTS = {"search_range_start": 0.7, "search_range_end": 1.3, "search_step": 0.01,
                 "max_percentile": 0.999999, "min_percentile": 0.999999}


def amct_config_text(skip_layers: Sequence[str], batch_num: int, per_channel: bool = True,
                     activation_offset: bool = True, comment: str = "") -> str:
    """AMCT's simplified post-training quantization configuration (protobuf text format)."""
    if batch_num < 1:
        raise AscendSlimError(f"AMCT batch_num must be at least 1, got {batch_num}")
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"batch_num : {batch_num}", f"activation_offset : {str(activation_offset).lower()}"]
    lines += [f'skip_layers : "{text_encoding.CEscape(name, as_utf8=True)}"' for name in skip_layers]
    lines += ["common_config : {", "    arq_quantize : {", f"        channel_wise : {str(per_channel).lower()}",
              "    }", "    ifmr_quantize : {"]
    lines += [f"        {key} : {value}" for key, value in IFMR_DEFAULTS.items()]
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"


def write_amct_config(path: str | Path, skip_layers: Sequence[str], batch_num: int, per_channel: bool = True,
                      comment: str = "") -> Path:
    """Write :func:`amct_config_text` atomically to ``path``."""
    path = Path(path)
    atomic_write_text(path, amct_config_text(skip_layers, batch_num, per_channel=per_channel, comment=comment))
    return path
