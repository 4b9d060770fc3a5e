"""The ascend-slim CLI end to end (subprocess, as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import onnx
import pytest

import ascend_slim


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ascend_slim", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def test_version_and_help() -> None:
    out = cli("--version")
    assert out.returncode == 0 and ascend_slim.__version__ in out.stdout
    out = cli("--help")
    assert out.returncode == 0
    for command in ("detect", "speed", "eval", "export", "deploy", "convert"):
        assert command in out.stdout


def test_detect_draws_images_and_labels(yolov5n_onnx: Path, images_dir: Path, tmp_path: Path) -> None:
    out = cli("detect", "--weights", yolov5n_onnx, "--source", images_dir, "--out", tmp_path / "res", "--save-txt")
    assert out.returncode == 0, out.stderr
    assert "2 image(s)" in out.stdout
    for name in ("bus", "zidane"):
        drawn = cv2.imread(str(tmp_path / "res" / f"{name}.jpg"))
        original = cv2.imread(str(images_dir / f"{name}.jpg"))
        assert drawn.shape == original.shape and (drawn != original).any()
    lines = (tmp_path / "res" / "labels" / "bus.txt").read_text().splitlines()
    assert sorted(int(line.split()[0]) for line in lines) == [0, 0, 0, 0, 5]  # 4 persons, 1 bus
    assert all(0 <= float(v) <= 1 for line in lines for v in line.split()[1:5])


def test_detect_nosave_writes_no_images(yolov5n_onnx: Path, images_dir: Path, tmp_path: Path) -> None:
    out = cli("detect", "--weights", yolov5n_onnx, "--source", images_dir, "--out", tmp_path / "none", "--nosave")
    assert out.returncode == 0, out.stderr
    assert "nothing written" in out.stdout and not (tmp_path / "none").exists()
    out = cli("detect", "--weights", yolov5n_onnx, "--source", images_dir, "--out", tmp_path / "txt", "--nosave",
              "--save-txt")
    assert out.returncode == 0, out.stderr
    assert sorted(p.relative_to(tmp_path / "txt").as_posix() for p in (tmp_path / "txt").rglob("*.*")) == [
        "labels/bus.txt", "labels/zidane.txt"]


def test_detect_with_image_set(yolov5n_onnx: Path, voc_root: Path, tmp_path: Path) -> None:
    ids = (voc_root / "VOC2007/ImageSets/Main/test.txt").read_text().split()[:3]
    image_set = tmp_path / "ids.txt"
    image_set.write_text("\n".join(ids) + "\n")
    out = cli("detect", "--weights", yolov5n_onnx, "--image-set", image_set, "--source",
              voc_root / "VOC2007/JPEGImages", "--out", tmp_path / "res")
    assert out.returncode == 0, out.stderr
    assert sorted(p.stem for p in (tmp_path / "res").glob("*.jpg")) == sorted(ids)


@pytest.mark.parametrize(
    "args, message",
    [
        (["detect", "--source", "nowhere/"], "source not found"),
        (["detect", "--source", "{images}", "--weights", "missing.pt"], "weights not found"),
        (["detect", "--source", "{images}", "--image-set", "missing.txt"], "image-set file not found"),
        (["eval", "--data", "nowhere/"], "nowhere"),
        (["export", "--weights", "missing.pt"], "weights not found"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args: list, message: str, images_dir: Path, yolov5n_onnx: Path,
                                          tmp_path: Path) -> None:
    args = [a.replace("{images}", str(images_dir)) for a in args]
    if "--weights" not in args and args[0] != "export":
        args += ["--weights", str(yolov5n_onnx)]
    out = cli(*args, "--out", tmp_path / "out") if args[0] == "detect" else cli(*args)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert message in out.stderr
    assert not (tmp_path / "out").exists()


def test_bad_flag_value() -> None:
    out = cli("detect", "--source", ".", "--conf-thres", "2")
    assert out.returncode == 2 and "must lie in [0, 1]" in out.stderr


def test_corrupt_image_is_named(yolov5n_onnx: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = cli("detect", "--weights", yolov5n_onnx, "--source", src, "--out", tmp_path / "res")
    assert out.returncode == 1 and "broken.jpg" in out.stderr
    assert not (tmp_path / "res").exists()  # the only image failed: nothing was written


def test_speed_report(yolov5n_onnx: Path, images_dir: Path, tmp_path: Path) -> None:
    report_file = tmp_path / "speed.json"
    out = cli("speed", "--weights", yolov5n_onnx, "--source", images_dir, "--warmup", "1", "--iters", "4",
              "--pipelined", "--json", report_file)
    assert out.returncode == 0, out.stderr
    report = json.loads(report_file.read_text())
    assert report["images"] == 4
    assert set(report["sequential"]["stages"]) == {"decode", "preprocess", "inference", "postprocess"}
    for stage in report["sequential"]["stages"].values():
        assert stage["calls"] == 4 and 0 < stage["p50_ms"] <= stage["p90_ms"]
    assert report["pipelined"]["images_per_s"] > 0
    assert "images/s" in out.stdout


def test_export_cli(yolov5n_pt: Path, tmp_path: Path) -> None:
    target = tmp_path / "n320.onnx"
    out = cli("export", "--weights", yolov5n_pt, "--img", "320", "-o", target)
    assert out.returncode == 0, out.stderr
    model = onnx.load(str(target))
    assert [o.name for o in model.graph.output] == ["head0", "head1", "head2"]
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 40, 40, 85]


def test_speed_without_source_uses_a_synthetic_image(yolov5n_onnx: Path) -> None:
    out = cli("speed", "--weights", yolov5n_onnx, "--warmup", "0", "--iters", "3")
    assert out.returncode == 0, out.stderr
    assert "synthetic" in out.stdout and "3 images" in out.stdout


def test_export_remapped_to_voc(yolov5n_pt: Path, tmp_path: Path) -> None:
    from ascend_slim.classes import VOC_CLASSES
    from ascend_slim.meta import ModelMeta

    target = tmp_path / "voc.onnx"
    out = cli("export", "--weights", yolov5n_pt, "--img", "320", "--classes", "voc", "-o", target)
    assert out.returncode == 0, out.stderr
    model = onnx.load(str(target))
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    assert meta.names == list(VOC_CLASSES)
    assert [h["action"] for h in meta.history][-2:] == ["remap_classes", "export_onnx"]
    assert model.graph.output[0].type.tensor_type.shape.dim[4].dim_value == 25


def test_inference_commands_never_import_torch(yolov5n_onnx: Path, images_dir: Path, voc_root: Path,
                                               tmp_path: Path) -> None:
    """detect, speed and eval on an .onnx model run without torch (checked in one fresh interpreter)."""
    mini = tmp_path / "VOCdevkit" / "VOC2007"
    (mini / "ImageSets" / "Main").mkdir(parents=True)
    for sub in ("Annotations", "JPEGImages"):
        (mini / sub).symlink_to(voc_root / "VOC2007" / sub)
    ids = (voc_root / "VOC2007/ImageSets/Main/test.txt").read_text().split()[:5]
    (mini / "ImageSets/Main/test.txt").write_text("\n".join(ids) + "\n")
    runs = [
        ["detect", "--weights", yolov5n_onnx, "--source", images_dir, "--out", tmp_path / "det"],
        ["speed", "--weights", yolov5n_onnx, "--source", images_dir, "--warmup", "0", "--iters", "2"],
        ["eval", "--weights", yolov5n_onnx, "--data", mini.parent, "--out", tmp_path / "txt", "--plots", ""],
    ]
    code = (
        "import sys\n"
        "from ascend_slim.cli import main\n"
        f"for args in {[[str(a) for a in r] for r in runs]!r}:\n"
        "    assert main(args) == 0, args\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_unwritable_output_is_one_line(yolov5n_onnx: Path, images_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = cli("detect", "--weights", yolov5n_onnx, "--source", images_dir / "bus.jpg", "--out", blocker / "res")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and str(blocker) in out.stderr, out.stderr
