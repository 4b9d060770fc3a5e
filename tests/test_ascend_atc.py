"""ATC: graph inspection (out-nodes only when needed), the exact command, and `convert` against a stand-in atc."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ascend_slim.ascend.aipp import render_aipp, yolov5_aipp
from ascend_slim.ascend.atc import OnnxGraphFacts, atc_command, convert, inspect_onnx
from ascend_slim.cli import main as cli_main
from ascend_slim.errors import AscendSlimError

SIZE, NO = 64, 7  # input 64x64, 2 classes -> 5+2 channels per anchor

FAKE_ATC = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ATC_RECORD"], "a") as f:
    f.write(json.dumps(args) + "\\n")
mode = os.environ.get("FAKE_ATC_MODE", "ok")
output = next(a.split("=", 1)[1] for a in args if a.startswith("--output="))
print("ATC start working now, please wait for a moment.")
if mode == "fail":
    print("ATC run failed, Please check the detail log, Try 'atc --help' for more information")
    sys.exit(1)
if mode != "noom":
    with open(output + ".om", "wb") as f:
        f.write(b"om")
if mode != "noline":
    print("ATC run success, welcome to the next use.")
"""


def _head_graph(path: Path, decoded: bool) -> Path:
    """A tiny YOLO-like graph: two strided convs -> Reshape -> Transpose(0,1,3,4,2) heads.

    ``decoded``: the heads go on through Sigmoid/Reshape/Concat into one [1,K,NO] output (the Ultralytics
    layout), so ATC needs --out_nodes at the Transposes.
    """
    nodes, inits, outputs, flat = [], [], [], []
    for i, stride in enumerate((8, 16)):
        n = SIZE // stride
        w = numpy_helper.from_array(np.zeros((3 * NO, 3, stride, stride), np.float32), f"w{i}")
        shape = numpy_helper.from_array(np.array([1, 3, NO, n, n], np.int64), f"shape{i}")
        inits += [w, shape]
        nodes += [
            helper.make_node("Conv", ["images", f"w{i}"], [f"conv{i}"], name=f"Conv_{i}", strides=[stride, stride]),
            helper.make_node("Reshape", [f"conv{i}", f"shape{i}"], [f"r{i}"], name=f"Reshape_{i}"),
            helper.make_node("Transpose", [f"r{i}"], [f"head{i}"], name=f"Transpose_{100 * (i + 1)}",
                             perm=[0, 1, 3, 4, 2]),
        ]
        if decoded:
            flat_shape = numpy_helper.from_array(np.array([1, -1, NO], np.int64), f"flat{i}")
            inits.append(flat_shape)
            nodes += [helper.make_node("Sigmoid", [f"head{i}"], [f"s{i}"], name=f"Sigmoid_{i}"),
                      helper.make_node("Reshape", [f"s{i}", f"flat{i}"], [f"f{i}"], name=f"Flat_{i}")]
            flat.append(f"f{i}")
        else:
            outputs.append(helper.make_tensor_value_info(f"head{i}", TensorProto.FLOAT, [1, 3, n, n, NO]))
    if decoded:
        nodes.append(helper.make_node("Concat", flat, ["output"], name="Concat_out", axis=1))
        outputs.append(helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3 * (64 + 16), NO]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                         [1, 3, SIZE, SIZE])], outputs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    return path


@pytest.fixture()
def fake_atc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "atc"
    script.write_text(FAKE_ATC.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "atc_calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ATC_RECORD", str(record))
    return record


def _calls(record: Path) -> list[list[str]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_raw_head_graph_needs_no_out_nodes(tmp_path: Path) -> None:
    facts = inspect_onnx(_head_graph(tmp_path / "raw.onnx", decoded=False))
    assert facts == OnnxGraphFacts("images", (1, 3, SIZE, SIZE), None)


def test_decoded_graph_is_cut_at_head_transposes(tmp_path: Path) -> None:
    facts = inspect_onnx(_head_graph(tmp_path / "dec.onnx", decoded=True))
    assert facts.out_nodes == ["Transpose_100:0", "Transpose_200:0"]  # stride 8 first
    cmd = atc_command("dec.onnx", "dec", "Ascend310", facts, "aipp.cfg")
    assert cmd[-1] == "--out_nodes=Transpose_100:0;Transpose_200:0"


def test_atc_command_is_the_documented_one() -> None:
    facts = OnnxGraphFacts("images", (1, 3, 512, 512), None)
    assert atc_command("m.onnx", "out/m", "Ascend310", facts, "aipp_yolov5.cfg") == [
        "atc", "--framework=5", "--model=m.onnx", "--output=out/m", "--input_format=NCHW",
        "--input_shape=images:1,3,512,512", "--insert_op_conf=aipp_yolov5.cfg", "--soc_version=Ascend310",
        "--output_type=FP32", "--enable_small_channel=1",
    ]
    no_aipp = atc_command("m.onnx", "m", "Ascend310", facts, None)
    assert not any(a.startswith(("--insert_op_conf", "--enable_small_channel")) for a in no_aipp)


def test_inspect_rejects_dynamic_input(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["y"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, 64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 64, 64])])
    onnx.save(helper.make_model(graph), str(tmp_path / "dyn.onnx"))
    with pytest.raises(AscendSlimError, match="static 1x3xHxW"):
        inspect_onnx(tmp_path / "dyn.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(AscendSlimError, match="cannot read ONNX"):
        inspect_onnx(tmp_path / "bad.onnx")


def _inputs(tmp_path: Path, decoded: bool = False) -> tuple[Path, Path]:
    model = _head_graph(tmp_path / "m.onnx", decoded)
    aipp = tmp_path / "aipp.cfg"
    aipp.write_text(render_aipp(yolov5_aipp(SIZE, SIZE)))
    return model, aipp


def test_convert_success_runs_exact_command(fake_atc: Path, tmp_path: Path, capsys) -> None:
    model, aipp = _inputs(tmp_path, decoded=True)
    om = convert(model, tmp_path / "out" / "m", "Ascend310", aipp)
    assert om == tmp_path / "out" / "m.om" and om.read_bytes() == b"om"
    assert _calls(fake_atc) == [[
        "--framework=5", f"--model={model}", f"--output={tmp_path / 'out' / 'm'}", "--input_format=NCHW",
        f"--input_shape=images:1,3,{SIZE},{SIZE}", f"--insert_op_conf={aipp}", "--soc_version=Ascend310",
        "--output_type=FP32", "--enable_small_channel=1", "--out_nodes=Transpose_100:0;Transpose_200:0",
    ]]
    assert "ATC run success" in capsys.readouterr().out  # the log is streamed


@pytest.mark.parametrize("mode, message", [
    ("fail", "exit code 1: ATC run failed"),
    ("noline", "did not print 'ATC run success'"),
    ("noom", "did not write"),
])
def test_convert_reports_failures(fake_atc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  mode: str, message: str) -> None:
    model, aipp = _inputs(tmp_path)
    monkeypatch.setenv("FAKE_ATC_MODE", mode)
    stale = tmp_path / "m.om"
    stale.write_bytes(b"old")  # a left-over .om must not count as success
    with pytest.raises(AscendSlimError, match=message):
        convert(model, tmp_path / "m", "Ascend310", aipp)
    assert len(_calls(fake_atc)) == 1


def test_convert_cli(fake_atc: Path, tmp_path: Path, capsys) -> None:
    model, _ = _inputs(tmp_path)
    assert cli_main(["convert", "--onnx", str(model), "--no-aipp", "--soc", "Ascend310P3"]) == 0
    assert _calls(fake_atc)[0][-2:] == ["--soc_version=Ascend310P3", "--output_type=FP32"]
    assert (tmp_path / "m.om").is_file() and "converted" in capsys.readouterr().out


def test_convert_without_atc_prints_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    model, aipp = _inputs(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert cli_main(["convert", "--onnx", str(model), "--aipp", str(aipp), "-o", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "source /usr/local/Ascend/ascend-toolkit/set_env.sh" in err
    assert f"atc --framework=5 --model={model}" in err and "--soc_version=Ascend310" in err


def test_convert_checks_aipp_size(tmp_path: Path) -> None:
    model = _head_graph(tmp_path / "m.onnx", decoded=False)
    aipp = tmp_path / "aipp.cfg"
    aipp.write_text(render_aipp(yolov5_aipp(512, 512)))
    with pytest.raises(AscendSlimError, match="differs from the model input"):
        convert(model, tmp_path / "m", "Ascend310", aipp)
