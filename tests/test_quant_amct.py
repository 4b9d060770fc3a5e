"""The AMCT simplified calibration config parses back as protobuf text format with the documented field names."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from ascend_slim import AscendSlimError
from ascend_slim.quant.amct import IFMR_DEFAULTS, amct_config_text, write_amct_config

_F = descriptor_pb2.FieldDescriptorProto


def _amct_config_class():
    """The subset of AMCT's ``calibration_config_onnx.proto`` that ascend-slim writes (field numbers are ours)."""
    proto = descriptor_pb2.FileDescriptorProto(name="amct_subset_test.proto", package="amct_subset_test",
                                               syntax="proto2")

    def message(name: str, fields: list[tuple[str, int, int, str | None]]) -> None:
        msg = proto.message_type.add(name=name)
        for number, (field, ftype, label, type_name) in enumerate(fields, start=1):
            f = msg.field.add(name=field, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".amct_subset_test.{type_name}"

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("ARQuantize", [("channel_wise", _F.TYPE_BOOL, opt, None)])
    message("IFMRQuantize", [(k, _F.TYPE_FLOAT, opt, None) for k in IFMR_DEFAULTS])
    message("CalibrationConfig", [("arq_quantize", _F.TYPE_MESSAGE, opt, "ARQuantize"),
                                  ("ifmr_quantize", _F.TYPE_MESSAGE, opt, "IFMRQuantize")])
    message("AMCTConfig", [("batch_num", _F.TYPE_UINT32, opt, None), ("activation_offset", _F.TYPE_BOOL, opt, None),
                           ("skip_layers", _F.TYPE_STRING, rep, None),
                           ("common_config", _F.TYPE_MESSAGE, opt, "CalibrationConfig")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("amct_subset_test.AMCTConfig"))


def test_config_parses_back(tmp_path: Path) -> None:
    skip = ["/model/model.0/conv/Conv", "/model/model.24/m.0/Conv", 'odd "name"\\']
    path = write_amct_config(tmp_path / "amct.cfg", skip, batch_num=200, per_channel=True,
                             comment="yolov5n 640\n200 VOC trainval images")
    config = text_format.Parse(path.read_text(), _amct_config_class()())
    assert config.batch_num == 200 and config.activation_offset
    assert list(config.skip_layers) == skip
    assert config.common_config.arq_quantize.channel_wise
    ifmr = config.common_config.ifmr_quantize
    assert ifmr.search_range_start == pytest.approx(0.7) and ifmr.max_percentile == pytest.approx(0.999999)
    per_tensor = text_format.Parse(amct_config_text([], batch_num=1, per_channel=False), _amct_config_class()())
    assert not per_tensor.common_config.arq_quantize.channel_wise and not per_tensor.skip_layers


def test_bad_batch_num(tmp_path: Path) -> None:
    with pytest.raises(AscendSlimError, match="batch_num"):
        write_amct_config(tmp_path / "amct.cfg", [], batch_num=0)
    assert not list(tmp_path.iterdir())
