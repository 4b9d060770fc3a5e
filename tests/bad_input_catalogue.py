"""The bad-input catalogue: every hostile or broken input ascend-slim is known to meet, and what it must do.

Each row is one case of ``tests/test_bad_input.py`` and one row of the README's "Bad input" section
(``python tests/bad_input_catalogue.py`` prints that section). A row builds its input under a temporary folder
(``make``), runs ``ascend-slim <argv>`` (or a library call, ``call``) and states the outcome: the exit code, a
regular expression the single error line (or a stderr line of a run that goes on) must match, and the files the
run may leave in ``out/``. Inputs the package already handled when the catalogue was written are rows too, so
they stay handled.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ascend_slim.classes import VOC_CLASSES
from ascend_slim.errors import AscendSlimError
from ascend_slim.recipes.slim_config import SlimConfig


@dataclass(frozen=True)
class Env:
    """Where a row builds its input, and the shared real data it may use."""

    tmp: Path
    onnx: Path  # the official yolov5n, exported (raw head, dynamic size)
    pt: Path  # the official yolov5n.pt
    images: Path  # bus.jpg, zidane.jpg
    voc: Path  # the real VOCdevkit


@dataclass(frozen=True)
class Result:
    """What a run printed and returned."""

    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    what: str  # the bad input, in words
    answer: str  # what ascend-slim does, in words
    argv: tuple[str, ...] = ()  # ascend-slim arguments; {name} is filled from make()'s dict and Env's fields
    make: Callable[[Env], dict[str, object]] | None = None
    code: int = 1
    message: str = ""  # regex: the one error line (code != 0) or some stderr line (code == 0)
    outputs: tuple[str, ...] | None = None  # exactly the files in {out}/ afterwards (None: not checked when the
    #                                          run succeeds; a failed run must always leave {out}/ empty)
    runner: str = "inprocess"  # "inprocess", "readonly", "fsize", "sigint" (the last three in a subprocess)
    call: Callable[[Env], object] | None = None  # a library call instead of argv
    error: type[BaseException] | None = None  # the exception the library call raises (None: it returns)
    extra: Callable[[Env, Result], None] | None = field(default=None, repr=False)  # more checks


# -- builders -----------------------------------------------------------------------------------------------
def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def encoded(img: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def photo(env: Env) -> np.ndarray:
    return cv2.resize(cv2.imread(str(env.images / "bus.jpg")), (160, 208))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims ``width`` x ``height`` (one compressed row of data follows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(width + 1))) + \
        chunk(b"IEND", b"")


def image_file(name: str, content: Callable[[Env], bytes]) -> Callable[[Env], dict[str, object]]:
    return lambda env: {"src": write(env.tmp / "src" / name, content(env))}


def clip(frames: int, fourcc: str = "MJPG", keep: float = 1.0) -> Callable[[Env], bytes]:
    """The bytes of a 160x120 clip of ``frames`` photos written by OpenCV (AVI for MJPG), the first ``keep``
    fraction of them only (a truncated file)."""
    def content(env: Env) -> bytes:
        path = env.tmp / "clip.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (160, 120))
        for i in range(frames):
            writer.write(cv2.resize(photo(env), (160, 120)) // (1 + i % 3))
        writer.release()
        data = path.read_bytes()
        path.unlink()
        return data[:int(len(data) * keep)]
    return content


def folder(**files: Callable[[Env], bytes]) -> Callable[[Env], dict[str, object]]:
    def make(env: Env) -> dict[str, object]:
        for name, content in files.items():
            write(env.tmp / "src" / name.replace("_dot_", "."), content(env))
        return {"src": env.tmp / "src"}
    return make


def image_set(text: str, encoding: str = "utf-8") -> Callable[[Env], dict[str, object]]:
    """A folder of real images and an image-set file listing ``text``."""
    def make(env: Env) -> dict[str, object]:
        (env.tmp / "src").mkdir()
        for name in ("bus", "zidane"):
            (env.tmp / "src" / f"{name}.jpg").symlink_to(env.images / f"{name}.jpg")
        return {"src": env.tmp / "src", "list": write(env.tmp / "list.txt", text.encode(encoding))}
    return make


def tampered_onnx(key: str, value: str) -> Callable[[Env], dict[str, object]]:
    """The exported yolov5n with one ``metadata_props`` entry rewritten (as a hostile user could)."""
    def make(env: Env) -> dict[str, object]:
        import onnx

        model = onnx.load(str(env.onnx))
        for prop in model.metadata_props:
            if prop.key == f"ascend_slim.{key}":
                prop.value = value
        onnx.save(model, str(env.tmp / "model.onnx"))
        return {"model": env.tmp / "model.onnx"}
    return make


def ir_without_bin(env: Env) -> dict[str, object]:
    """The exported model as an OpenVINO IR whose .bin was lost (needs the openvino extra)."""
    from ascend_slim.openvino_ir import convert_onnx

    xml = convert_onnx(env.onnx, env.tmp / "ir.xml")
    xml.with_suffix(".bin").unlink()
    return {"model": xml}


def classifier_onnx(env: Env) -> dict[str, object]:
    """A valid ONNX image classifier (no detection heads, no model facts)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["y"])],
        "classifier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(env.tmp / "cls.onnx"))
    return {"model": env.tmp / "cls.onnx"}


class _RunsShell:
    """Unpickling this runs ``touch <marker>``: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def malicious_pt(kind: str) -> Callable[[Env], dict[str, object]]:
    def make(env: Env) -> dict[str, object]:
        import pickle

        import torch

        path, payload = env.tmp / "evil.pt", {"model": _RunsShell(env.tmp / "pwned"), "epoch": 1}
        if kind == "zip":
            torch.save(payload, path)
        elif kind == "legacy":
            torch.save(payload, path, _use_new_zipfile_serialization=False)
        else:
            path.write_bytes(pickle.dumps(payload))
        return {"model": path}
    return make


def state_dict_pt(env: Env) -> dict[str, object]:
    import torch

    from ascend_slim.model.yolo import YOLOv5

    torch.save(YOLOv5.from_yaml("yolov5n").state_dict(), env.tmp / "sd.pt")
    return {"model": env.tmp / "sd.pt"}


def never_pwned(env: Env, result: Result) -> None:
    assert not (env.tmp / "pwned").exists(), "the pickled command ran"


VOC_IDS = ("000001", "000004", "000006")


def mini_voc(change: Callable[[Path], None] | None = None, ids: tuple[str, ...] = VOC_IDS,
             list_text: str | None = None) -> Callable[[Env], dict[str, object]]:
    """A 3-image VOC2007 test split (real annotations and photos), then ``change(VOC2007 folder)``."""
    def make(env: Env) -> dict[str, object]:
        year = env.tmp / "VOCdevkit" / "VOC2007"
        real = env.voc / "VOC2007"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (year / sub).mkdir(parents=True)
        for i in ids:
            (year / "Annotations" / f"{i}.xml").write_bytes((real / "Annotations" / f"{i}.xml").read_bytes())
            (year / "JPEGImages" / f"{i}.jpg").symlink_to(real / "JPEGImages" / f"{i}.jpg")
        text = list_text if list_text is not None else "".join(f"{i}\n" for i in ids)
        (year / "ImageSets" / "Main" / "test.txt").write_bytes(text.encode("utf-8"))
        if change:
            change(year)
        return {"voc": env.tmp / "VOCdevkit"}
    return make


def replace_xml(image_id: str, edit: Callable[[str], str]) -> Callable[[Path], None]:
    def change(year: Path) -> None:
        xml = year / "Annotations" / f"{image_id}.xml"
        xml.write_text(edit(xml.read_text()))
    return change


def replace_jpeg(image_id: str, data: bytes) -> Callable[[Path], None]:
    def change(year: Path) -> None:
        jpeg = year / "JPEGImages" / f"{image_id}.jpg"
        jpeg.unlink()
        jpeg.write_bytes(data)
    return change


def remove(relative: str) -> Callable[[Path], None]:
    def change(year: Path) -> None:
        path = year / relative
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    return change


def resized_jpeg(image_id: str) -> Callable[[Path], None]:
    """The photo replaced by a smaller copy of itself (its XML <size> is now wrong)."""
    def change(year: Path) -> None:
        jpeg = year / "JPEGImages" / f"{image_id}.jpg"
        img = cv2.imread(str(jpeg))
        jpeg.unlink()
        jpeg.write_bytes(encoded(cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2)), ".jpg"))
    return change


def det_files(ids: tuple[str, ...]) -> Callable[[Path], None]:
    """A det_test_person.txt (the format an Ascend device writes) with one box on each of ``ids``."""
    def change(year: Path) -> None:
        lines = "".join(f"{i} 0.900000 10.000000 10.000000 100.000000 100.000000\n" for i in ids)
        write(year.parent.parent / "dets" / "det_test_person.txt", lines.encode())
    return change


BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<annotation><size><width>&lol2;</width></size></annotation>")


def progress_ends_at(total: int) -> Callable[[Env, Result], None]:
    def check(env: Env, result: Result) -> None:
        assert f" {total}/{total} " in result.stderr, result.stderr
    return check


def stdout_says(pattern: str) -> Callable[[Env, Result], None]:
    def check(env: Env, result: Result) -> None:
        assert re.search(pattern, result.stdout), result.stdout
    return check


def links(count: int) -> Callable[[Env], dict[str, object]]:
    """A folder of ``count`` links to bus.jpg."""
    def make(env: Env) -> dict[str, object]:
        (env.tmp / "src").mkdir()
        for i in range(count):
            (env.tmp / "src" / f"p{i:03d}.jpg").symlink_to(env.images / "bus.jpg")
        return {"src": env.tmp / "src"}
    return make


def whole_files_only(env: Env, result: Result) -> None:
    written = sorted((env.tmp / "out").glob("*.jpg"))
    assert written and all(cv2.imread(str(p)) is not None for p in written)  # every file there is complete


def copy_of(name: str, source: Callable[[Env], Path]) -> Callable[[Env], Path]:
    return lambda env: write(env.tmp / name, source(env).read_bytes())


def unchanged(*names: str) -> Callable[[Env, Result], None]:
    """Each ``env.tmp/<name>`` still holds the bytes :func:`inputs` kept in ``<name>.orig``."""
    def extra(env: Env, result: Result) -> None:
        for name in names:
            path = env.tmp / name
            assert path.read_bytes() == (env.tmp / f"{name}.orig").read_bytes(), f"{name} was overwritten"
    return extra


def inputs(**named: Callable[[Env], Path]) -> Callable[[Env], dict[str, object]]:
    """Input files under the temporary folder, each with an ``.orig`` copy for :func:`unchanged`."""
    def make(env: Env) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, build in named.items():
            path = build(env)
            write(path.with_name(path.name + ".orig"), path.read_bytes())
            out[key] = path
        return out
    return make


def photos(env: Env) -> Path:
    for name in ("bus", "zidane"):
        write(env.tmp / "src" / f"{name}.jpg", (env.images / f"{name}.jpg").read_bytes())
    return env.tmp / "src"


def photos_intact(env: Env, result: Result) -> None:
    for name in ("bus", "zidane"):
        assert (env.tmp / "src" / f"{name}.jpg").read_bytes() == (env.images / f"{name}.jpg").read_bytes()


def bad_model_yaml(change: Callable[[dict], None]) -> Callable[[Env], dict[str, object]]:
    """The shipped yolov5n.yaml with one layer row broken by ``change``."""
    def make(env: Env) -> dict[str, object]:
        import yaml

        from ascend_slim.model.spec import read_yaml

        cfg = read_yaml("yolov5n")
        change(cfg)
        return {"model": write(env.tmp / "bad.yaml", yaml.safe_dump(cfg).encode())}
    return make


def training_checkpoint(where: str, epoch: int = 4) -> Callable[[Env], dict[str, object]]:
    """An ascend-slim training checkpoint at ``env.tmp/<where>`` whose recorded run folder is ``env.tmp/done``, a
    finished run with a 3-line results.csv (which a resume must never touch)."""
    def make(env: Env) -> dict[str, object]:
        from ascend_slim.model.checkpoint import save_checkpoint
        from ascend_slim.model.yolo import YOLOv5

        done = env.tmp / "done"
        write(done / "results.csv", b"epoch,loss\n0,1.0\n1,0.9\n")
        path = env.tmp / where
        save_checkpoint(path, YOLOv5.from_yaml("yolov5n", nc=20), img_size=64, training={
            "epoch": epoch, "callbacks": {}, "config": {"data": str(env.voc), "save_dir": str(done)}})
        return {"model": path}
    return make


def other_run_untouched(env: Env, result: Result) -> None:
    assert (env.tmp / "done" / "results.csv").read_bytes() == b"epoch,loss\n0,1.0\n1,0.9\n"
    assert sorted(p.name for p in (env.tmp / "done").iterdir()) == ["results.csv"]


def static_onnx(size: int) -> Callable[[Env], dict[str, object]]:
    def make(env: Env) -> dict[str, object]:
        from ascend_slim.export import export_onnx
        from ascend_slim.model.checkpoint import load_weights

        model, _ = load_weights(env.pt)
        return {"model": export_onnx(model, env.tmp / f"static{size}.onnx", img_size=size)}
    return make


def saved_at(size: int) -> Callable[[Env], dict[str, object]]:
    """An ascend-slim checkpoint (yolov5n, 20 classes) saved for input size ``size``, as a slim run's final.pt."""
    def make(env: Env) -> dict[str, object]:
        from ascend_slim.model.checkpoint import save_checkpoint
        from ascend_slim.model.yolo import YOLOv5

        return {"model": save_checkpoint(env.tmp / "final.pt", YOLOv5.from_yaml("yolov5n", nc=20), img_size=size)}
    return make


def onnx_input_is(relative: str, size: int) -> Callable[[Env, Result], None]:
    def check(env: Env, result: Result) -> None:
        import onnx

        graph = onnx.load(str(env.tmp / relative)).graph
        assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim][2:] == [size, size]
    return check


def stdout_says_all(*patterns: str) -> Callable[[Env, Result], None]:
    def check(env: Env, result: Result) -> None:
        for pattern in patterns:
            stdout_says(pattern)(env, result)
    return check


def hyp_file(text: str) -> Callable[[Env], dict[str, object]]:
    return lambda env: {"hyp": write(env.tmp / "hyp.yaml", text.encode()), "voc": env.voc}


def slim_run(env: Env, plan: dict | None = None, **overrides: object) -> Path:
    """A slim run folder (slim.json only) on a mini VOC (selection split ``mine``, evaluated on ``test``) at
    ``target_latency`` 0.1, FP32 sizes only; with ``plan``, its plan stage recorded as finished with that choice
    (``chosen`` None: a plan-only run)."""
    from dataclasses import asdict

    from ascend_slim.recipes.slim import PlanResult, SlimConfig, SlimRun, StageRecord

    voc = MINI_VOC(env)["voc"]
    options = dict(weights=str(env.pt), classes="voc", data=str(voc), cuts=(), int8=False, target_latency=0.1,
                   select_split="mine", train=replace(SlimConfig().train, val_split="test"),
                   save_dir=str(env.tmp / "run"))
    run = SlimRun.create(SlimConfig(**{**options, **overrides}))
    if plan is not None:
        result = PlanResult(plan.get("chosen"), True, "ok", 3, 3, 1.0, str(run.path("plan/plan.md")), [])
        run.records["plan"] = StageRecord(1.0, 1.0, asdict(result))
        run.save()
    return run.dir


DEFAULT_CONFIDENCE = SlimConfig().confidence
CHOSEN = {"img_size": 320, "cut": 0.0, "precision": "fp32"}
MINI_VOC = mini_voc(lambda year: write(year / "ImageSets" / "Main" / "mine.txt", b"000006\n"),
                    list_text="000001\n000004\n")  # selection split mine, evaluation split test


def resumed(command: str, *flags: str, plan: dict | None = None, check: Callable[[object], bool],
            **overrides: object) -> Callable[[Env], object]:
    """``ascend-slim <command> --resume RUN <flags>`` resolved (the run it would go on with, not run), asserting
    ``check(run)``."""
    def call(env: Env) -> object:
        from ascend_slim.cli import build_parser
        from ascend_slim.cli.slim import resumed_run

        folder = slim_run(env, plan, **overrides)
        run = resumed_run(build_parser().parse_args([command, "--resume", str(folder), *flags]))
        assert check(run), (run.config, list(run.records))
        return run
    return call


def damaged_record(env: Env) -> dict[str, object]:
    """A run whose slim.json records a plan without its ``contributions`` field."""
    import json

    folder = slim_run(env, {"chosen": CHOSEN})
    state = json.loads((folder / "slim.json").read_text())
    del state["stages"]["plan"]["result"]["contributions"]
    (folder / "slim.json").write_text(json.dumps(state))
    return {"run": folder}


def copied_run(env: Env) -> object:
    """A run with an export record, copied: the copy's records name the copy's files (was: the original's)."""
    import shutil

    from ascend_slim.recipes.slim import ExportResult, SlimRun, Stage

    run = SlimRun.resume(slim_run(env, {"chosen": CHOSEN}))
    run.run_stage(Stage("export", lambda run: ExportResult(*(str(run.path(n)) for n in (
        "final.pt", "final.onnx", "original.onnx")), 320), ExportResult))
    shutil.copytree(run.dir, env.tmp / "copy")
    copy = SlimRun.resume(env.tmp / "copy")
    assert copy.result("export").final_onnx == str(env.tmp / "copy" / "final.onnx")
    return copy


def deploy_written_meanwhile(env: Env) -> object:
    """The deploy stage of a run whose --deploy folder someone wrote into after the start."""
    from ascend_slim.recipes.slim import SlimRun, deploy_stage

    run = SlimRun.resume(slim_run(env, {"chosen": CHOSEN}, deploy=str(env.tmp / "bundle")))
    write(env.tmp / "bundle" / "theirs.txt", b"someone else's")
    try:
        return deploy_stage(run)
    finally:
        assert (env.tmp / "bundle" / "theirs.txt").read_bytes() == b"someone else's"


def claimed_twice(env: Env) -> object:
    """Two runs that chose the free name ``exp`` before either made it: the second gets ``exp2``."""
    from ascend_slim.fileio import claim_run_dir

    assert claim_run_dir(env.tmp / "exp", increment=True) == (env.tmp / "exp", True)
    assert claim_run_dir(env.tmp / "exp", increment=True) == (env.tmp / "exp2", True)
    return env.tmp / "exp2"


def plan_cache_of_other_weights(env: Env) -> object:
    """plan/ made for other weights, measurements.json deleted as an earlier message told: still refused."""
    from ascend_slim.compound.measurement import tie_folder

    tie_folder(env.tmp / "plan", {"weights": "old"})
    write(env.tmp / "plan" / "models" / "320-c0.1-fp32.onnx", b"the old model's")
    return tie_folder(env.tmp / "plan", {"weights": "new"})


def damaged_match_records(env: Env) -> object:
    from ascend_slim.compound.measurement import MeasurementCache

    cache = MeasurementCache(env.tmp / "plan" / "measurements.json", {"weights": "w"})
    write(cache.reference_path, b"PK\x03\x04 cut short")
    return cache.load_reference()


def data_yaml(**keys: str) -> Callable[[Env], dict[str, object]]:
    """An Ultralytics data yaml over two real VOC photos with YOLO labels in images/train, with ``keys`` (e.g.
    ``val``) besides ``path``, ``train`` and ``names``."""
    def make(env: Env) -> dict[str, object]:
        import yaml

        from ascend_slim.data.voc import load_voc
        from ascend_slim.data.yolo_txt import format_yolo_lines, label_path

        voc = load_voc(env.voc, split="trainval")
        for image_id in voc.ids[:2]:
            image = env.tmp / "yolo" / "images" / "train" / f"{image_id}.jpg"
            image.parent.mkdir(parents=True, exist_ok=True)
            image.symlink_to(voc.image_path(image_id))
            ann = voc.annotations[image_id]
            keep = ~ann.difficult
            write(label_path(image), format_yolo_lines(ann.boxes[keep] - 1, ann.labels[keep],
                                                       (ann.height, ann.width)).encode())
        config = {"path": str(env.tmp / "yolo"), "train": "images/train", **keys,
                  "names": dict(enumerate(VOC_CLASSES))}
        return {"yaml": write(env.tmp / "yolo" / "data.yaml", yaml.safe_dump(config).encode())}
    return make


def slim_config(**settings: object) -> Callable[[Env], object]:
    def call(env: Env) -> object:
        from ascend_slim.recipes.slim import SlimConfig

        return SlimConfig(weights=str(env.pt), data=str(env.voc), classes="voc", **settings).validated()
    return call


def split_file(name: str, text: str) -> Callable[[Path], None]:
    def change(year: Path) -> None:
        write(year / "ImageSets" / "Main" / f"{name}.txt", text.encode())
    return change


def changes(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def change(year: Path) -> None:
        for step in steps:
            step(year)
    return change


def no_objects(image_id: str) -> Callable[[Path], None]:
    return replace_xml(image_id, lambda t: re.sub(r"<object>.*?</object>", "", t, flags=re.S))


# -- library calls ------------------------------------------------------------------------------------------
def core_call(name: str, *args: object, **kwargs: object) -> Callable[[Env], object]:
    def call(env: Env) -> object:
        from ascend_slim import core

        return getattr(core, name)(*args, **kwargs)
    return call


def core_result(name: str, args: tuple, check: Callable[[object], bool], **kwargs: object) -> Callable[[Env], object]:
    """``core.<name>(*args, **kwargs)``, asserting ``check(result)``."""
    def call(env: Env) -> object:
        result = core_call(name, *args, **kwargs)(env)
        assert check(result), result
        return result
    return call


def decoded_rows(*xywh: tuple[float, float, float, float]) -> np.ndarray:
    """``[1, K, 6]`` decoded rows (one class), objectness and class score 0.9."""
    pred = np.full((1, len(xywh), 6), 0.9, np.float32)
    pred[0, :, :4] = xywh
    return pred


def load_hyp_call(text: str) -> Callable[[Env], object]:
    def call(env: Env) -> object:
        from ascend_slim.train.hyp import load_hyp

        hyp = load_hyp(write(env.tmp / "hyp.yaml", text.encode()))
        assert hyp["lr0"] == 0.001 and hyp["weight_decay"] == 5e-4, hyp
        return hyp
    return call


def unlabelled_split(env: Env) -> object:
    """load_splits on a 3-image VOC trainval split whose annotations hold no object: a warning on stderr."""
    import contextlib
    import io
    import re as re_

    from ascend_slim.train import TrainConfig
    from ascend_slim.train.builder import load_splits

    year = env.tmp / "VOCdevkit" / "VOC2007"
    for i in VOC_IDS:
        xml = (env.voc / "VOC2007" / "Annotations" / f"{i}.xml").read_text()
        write(year / "Annotations" / f"{i}.xml", re_.sub(r"<object>.*?</object>", "", xml, flags=re_.S).encode())
        write(year / "JPEGImages" / f"{i}.jpg", (env.voc / "VOC2007" / "JPEGImages" / f"{i}.jpg").read_bytes())
    write(year / "ImageSets" / "Main" / "trainval.txt", "".join(f"{i}\n" for i in VOC_IDS).encode())
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        splits = load_splits(TrainConfig(data=str(env.tmp / "VOCdevkit"), train_split="trainval",
                                         val_split="trainval"))
    assert len(splits[0]) == 3
    assert re_.search(r"warning: no image of .* split 'trainval' has a labelled object", stderr.getvalue()), \
        stderr.getvalue()
    return splits


def meta_call(**fields: object) -> Callable[[Env], object]:
    def call(env: Env) -> object:
        from ascend_slim.meta import ModelMeta

        base = dict(names=["a", "b"], strides=[8, 16, 32], anchors=np.ones((3, 3, 2)), img_size=(640, 640))
        return ModelMeta(**{**base, **fields})
    return call


# -- the catalogue --------------------------------------------------------------------------------------------
TRAIN = ("train", "--data", "{voc}", "--cfg", "yolov5n", "--img", "64", "--epochs", "1", "--workers", "0",
         "--device", "cpu", "--project", "{out}")
DETECT = ("detect", "--weights", "{onnx}", "--img", "320", "--source", "{src}", "--out", "{out}")
DETECT_WITH = ("detect", "--weights", "{model}", "--img", "320", "--source", "{images}/bus.jpg", "--out", "{out}")
EVAL = ("eval", "--weights", "{onnx}", "--img", "160", "--data", "{voc}", "--out", "{out}", "--plots", "")
FROM_TXT = ("eval", "--data", "{voc}", "--from-txt", "{voc}/../dets", "--out", "{out}", "--plots", "")


SLIM = ("slim", "--weights", "{pt}", "--classes", "voc", "--data", "{voc}", "--project", "{out}")
SLIM_MINI = (*SLIM, "--cuts", "none", "--no-int8")  # a mini VOC without a training split


def voc_only(env: Env) -> dict[str, object]:
    return {"voc": env.voc}


def flag(*args: str, error: str, what: str) -> Case:
    """A flag value out of range: argparse's usage error (exit 2) with ``error`` as its message."""
    argv = ("export", "--weights", "{pt}", "-o", "{out}/m.onnx") if args[0] in ("--opset", "--batch") else \
        ("detect", "--weights", "{onnx}", "--source", "{images}", "--out", "{out}")
    return Case("flag-" + "-".join(a.lstrip("-") for a in args), "Flags", what, f"usage error (exit 2): `{error}`",
                (*argv, *args), code=2, message=re.escape(error))


CASES: list[Case] = [
    # images
    Case("zero-byte-image", "Images", "a zero-byte .jpg", "exit 1: cannot decode image ... empty, truncated or not "
         "an image", DETECT, image_file("empty.jpg", lambda env: b""), message=r"cannot decode image .*empty\.jpg"),
    Case("truncated-jpeg", "Images", "a JPEG cut after 30 kB", "exit 1: cannot decode image", DETECT,
         image_file("cut.jpg", lambda env: (env.images / "bus.jpg").read_bytes()[:30000]),
         message=r"cannot decode image .*cut\.jpg"),
    Case("text-as-image", "Images", "a text file named .jpg", "exit 1: cannot decode image", DETECT,
         image_file("notes.jpg", lambda env: b"hello\n" * 100), message=r"cannot decode image .*notes\.jpg"),
    Case("png-named-jpg", "Images", "a PNG named .jpg", "decoded by content", DETECT,
         image_file("x.jpg", lambda env: encoded(photo(env), ".png")), code=0, outputs=("x.jpg",)),
    Case("grayscale", "Images", "a grayscale JPEG", "converted to BGR", DETECT,
         image_file("g.jpg", lambda env: encoded(cv2.cvtColor(photo(env), cv2.COLOR_BGR2GRAY), ".jpg")),
         code=0, outputs=("g.jpg",)),
    Case("rgba-png", "Images", "an RGBA PNG", "alpha dropped", DETECT,
         image_file("a.png", lambda env: encoded(cv2.cvtColor(photo(env), cv2.COLOR_BGR2BGRA), ".png")),
         code=0, outputs=("a.jpg",)),
    Case("16-bit-png", "Images", "a 16-bit PNG", "scaled to 8 bits", DETECT,
         image_file("d.png", lambda env: encoded(photo(env).astype(np.uint16) * 257, ".png")),
         code=0, outputs=("d.jpg",)),
    Case("1x1-image", "Images", "a 1x1 image", "letterboxed like any other", DETECT,
         image_file("dot.png", lambda env: encoded(np.full((1, 1, 3), 90, np.uint8), ".png")),
         code=0, outputs=("dot.jpg",)),
    Case("1x5000-image", "Images", "a 1x5000 image", "letterboxed like any other", DETECT,
         image_file("line.png", lambda env: encoded(np.full((1, 5000, 3), 90, np.uint8), ".png")),
         code=0, outputs=("line.jpg",)),
    Case("40000x40000-png", "Images", "a 1.5 kB PNG whose header says 40000x40000 (1.6 gigapixels)",
         "exit 1 before decoding: images above 100 megapixels are refused from their header", DETECT,
         image_file("huge.png", lambda env: png_header_only(40000, 40000)),
         message=r"huge\.png is 40000x40000 pixels, above the limit of 100,000,000"),
    Case("same-stem", "Images", "x.jpg and x.png in one folder",
         "both kept: x.jpg and x_2.jpg, with a note on stderr", DETECT,
         folder(x_dot_jpg=lambda env: encoded(photo(env), ".jpg"), x_dot_png=lambda env: encoded(photo(env), ".png")),
         code=0, message=r"note: 1 image\(s\) share a file name .*x\.png -> x_2", outputs=("x.jpg", "x_2.jpg")),
    # image-set lists
    Case("empty-image-set", "Image lists", "an empty image-set file", "exit 1: lists no images",
         (*DETECT, "--image-set", "{list}"), image_set(""), message=r"list\.txt lists no images"),
    Case("bom-image-set", "Image lists", "an image-set file saved with a UTF-8 BOM", "the BOM is ignored",
         (*DETECT, "--image-set", "{list}"), image_set("bus\nzidane\n", "utf-8-sig"), code=0,
         outputs=("bus.jpg", "zidane.jpg")),
    Case("missing-ids", "Image lists", "an image-set id without an image", "exit 1: names the missing image",
         (*DETECT, "--image-set", "{list}"), image_set("bus\nnosuchimage\n"),
         message=r"1 image\(s\) listed in .*list\.txt are missing .*first: nosuchimage\.jpg"),
    Case("id-listed-twice", "Image lists", "an id listed twice", "both kept: bus.jpg and bus_2.jpg, with a note",
         (*DETECT, "--image-set", "{list}"), image_set("bus\nbus\n"), code=0, message=r"bus\.jpg -> bus_2",
         outputs=("bus.jpg", "bus_2.jpg")),
    # models
    Case("missing-weights", "Models", "a --weights file that does not exist", "exit 1: weights not found",
         DETECT_WITH, lambda env: {"model": env.tmp / "nope.onnx"}, message="weights not found: .*nope.onnx"),
    Case("random-onnx", "Models", "random bytes named .onnx", "exit 1: cannot load ONNX model", DETECT_WITH,
         lambda env: {"model": write(env.tmp / "r.onnx", np.random.default_rng(0).bytes(5000))},
         message=r"cannot load ONNX model .*r\.onnx"),
    Case("truncated-onnx", "Models", "an ONNX export cut in half", "exit 1: cannot load ONNX model", DETECT_WITH,
         lambda env: {"model": write(env.tmp / "t.onnx", env.onnx.read_bytes()[:env.onnx.stat().st_size // 2])},
         message=r"cannot load ONNX model .*t\.onnx"),
    Case("classifier-onnx", "Models", "a valid ONNX classifier (no detection heads)",
         "exit 1: carries no ascend-slim model facts", DETECT_WITH, classifier_onnx,
         message=r"cls\.onnx carries no ascend-slim model facts"),
    Case("meta-names", "Models", "an export whose metadata lists 2 class names for 80 classes",
         "exit 1: outputs do not match the model facts", DETECT_WITH, tampered_onnx("names", '["a", "b"]'),
         message=r"outputs .* do not match its model facts \(2 class names"),
    Case("meta-anchors", "Models", "an export with a negative anchor in its metadata", "exit 1: names `anchors`",
         DETECT_WITH, tampered_onnx("anchors", "[[[10,13],[16,30],[33,23]],[[30,61],[62,45],[59,119]],"
                                               "[[116,90],[156,198],[-373,326]]]"),
         message=r"unusable model facts: anchors must be positive"),
    Case("meta-strides", "Models", "an export with a zero stride in its metadata", "exit 1: names `strides`",
         DETECT_WITH, tampered_onnx("strides", "[8, 0, 32]"), message=r"unusable model facts: strides must be"),
    Case("meta-img-size", "Models", "an export with img_size [0, 320] in its metadata", "exit 1: names `img_size`",
         DETECT_WITH, tampered_onnx("img_size", "[0, 320]"), message=r"unusable model facts: img_size must be posit"),
    Case("meta-batch", "Models", "an export with batch -2 in its metadata", "exit 1: names `batch`",
         DETECT_WITH, tampered_onnx("batch", "-2"), message=r"unusable model facts: batch must be a positive"),
    Case("meta-head", "Models", "an export whose metadata claims a decoded head", "exit 1: outputs do not match",
         DETECT_WITH, tampered_onnx("head", '"decoded"'), message=r"do not match its model facts .*expected one"),
    Case("ir-missing-bin", "Models", "an OpenVINO IR .xml without its .bin", "exit 1: names the missing .bin",
         DETECT_WITH, ir_without_bin, message=r"the weights file .*ir\.bin of ir\.xml is missing"),
    Case("ir-garbage", "Models", "a broken .xml given as an OpenVINO IR", "exit 1: not a readable OpenVINO IR",
         DETECT_WITH, lambda env: {"model": write(env.tmp / "g.xml", b"<net name='x'")},
         message=r"g\.xml is not a readable OpenVINO IR"),
    Case("state-dict-pt", "Models", "a plain state_dict saved as .pt",
         "exit 1: neither an Ultralytics YOLOv5 nor an ascend-slim checkpoint", DETECT_WITH, state_dict_pt,
         message=r"sd\.pt is neither an Ultralytics YOLOv5 nor an ascend-slim checkpoint"),
    *(Case(f"malicious-pickle-{kind}-{cmd}", "Models", f"a {kind} .pt whose pickle runs a shell command "
           f"(`{cmd}`)", "exit 1: the global is named and refused; nothing runs",
           {"detect": DETECT_WITH, "export": ("export", "--weights", "{model}", "-o", "{out}/m.onnx"),
            "deploy": ("deploy", "--weights", "{model}", "-o", "{out}")}[cmd], malicious_pt(kind),
           message=r"checkpoint refers to (posix|os|nt)\.system, which is not part of a YOLOv5 checkpoint",
           extra=never_pwned)
      for kind, cmd in (("zip", "detect"), ("legacy", "export"), ("raw-pickle", "deploy"))),
    # flags
    flag("--max-det", "99999999999999999999", error="argument --max-det: must lie in [1, 30000]",
         what="`--max-det 99999999999999999999`"),
    flag("--img", "100000", error="argument --img/--img-size: must lie in [32, 4096]", what="`--img 100000`"),
    flag("--threads", "-3", error="argument --threads: must lie in [0, 256]", what="`--threads -3`"),
    flag("--workers", "0", error="argument --workers: must lie in [1, 256]", what="`--workers 0`"),
    flag("--conf-thres", "2", error="argument --conf-thres: must lie in [0, 1]", what="`--conf-thres 2`"),
    flag("--opset", "3", error="argument --opset: must lie in [9, 20]", what="`export --opset 3`"),
    flag("--opset", "99", error="argument --opset: must lie in [9, 20]", what="`export --opset 99`"),
    flag("--batch", "0", error="argument --batch/--batch-size: must lie in [1, 256]", what="`export --batch 0`"),
    # VOC data
    Case("voc-no-annotations", "VOC data", "a VOC folder without Annotations/", "exit 1: not a VOC data set", EVAL,
         mini_voc(remove("Annotations")), message=r"VOC folder .*Annotations not found"),
    Case("voc-empty-split", "VOC data", "an empty split list", "exit 1: lists no images", EVAL,
         mini_voc(list_text=""), message=r"test\.txt lists no images"),
    Case("voc-bom-split", "VOC data", "a split list saved with a UTF-8 BOM", "the BOM is ignored: 3 images scored",
         FROM_TXT, mini_voc(det_files(VOC_IDS), list_text="\ufeff000001\n000004\n000006\n"), code=0,
         extra=stdout_says(r"VOC2007 test: 3 images, 0 skipped")),
    Case("voc-garbled-xml", "VOC data", "an annotation that is not XML",
         "skipped with the reason on stderr; counted", EVAL, mini_voc(replace_xml("000004", lambda t: t[:40])),
         code=0, message=r"skipped 000004: malformed annotation .*ParseError"),
    Case("voc-entity-bomb", "VOC data", "an annotation with an entity bomb (billion laughs)",
         "skipped: DTDs are refused, nothing is expanded", EVAL, mini_voc(replace_xml("000004", lambda t: BOMB)),
         code=0, message=r"skipped 000004: malformed annotation .*(DTDForbidden|EntitiesForbidden)"),
    Case("voc-box-outside", "VOC data", "a box outside its image", "skipped with the reason", EVAL,
         mini_voc(replace_xml("000004", lambda t: t.replace("<xmax>", "<xmax>9", 1))), code=0,
         message=r"skipped 000004: annotation .* outside the"),
    Case("voc-unknown-class", "VOC data", "an object of a class outside VOC", "skipped with the reason", EVAL,
         mini_voc(replace_xml("000004", lambda t: t.replace("<object>", "<object><name>zebra</name>", 1))), code=0,
         message=r"skipped 000004: annotation .* has unknown class"),
    Case("voc-missing-jpeg", "VOC data", "a listed image without its JPEG", "skipped with the reason", EVAL,
         mini_voc(remove("JPEGImages/000004.jpg")), code=0, message=r"skipped 000004: image missing"),
    Case("voc-size-mismatch", "VOC data", "a JPEG whose size differs from its XML `<size>`",
         "skipped with the reason (read from the JPEG header)", EVAL, mini_voc(resized_jpeg("000004")), code=0,
         message=r"skipped 000004: image .*000004\.jpg is \d+x\d+ but 000004\.xml says"),
    Case("voc-undecodable-jpeg", "VOC data", "a listed JPEG that does not decode",
         "skipped with the reason like any bad pair; the progress bar still ends at 3/3", EVAL,
         mini_voc(replace_jpeg("000004", b"\xff\xd8\xff\xe0 not really")), code=0,
         message=r"skipped 000004: cannot decode image", extra=progress_ends_at(3),
         outputs=tuple(f"det_test_{c}.txt" for c in VOC_CLASSES)),
    Case("voc-undecodable-strict", "VOC data", "the same with `--strict`", "exit 1 at the first bad image",
         (*EVAL, "--strict"), mini_voc(replace_jpeg("000004", b"\xff\xd8\xff\xe0 not really")),
         message=r"cannot decode image .*000004\.jpg.* \(strict mode stops at the first problem\)"),
    Case("voc-nothing-usable", "VOC data", "a split in which every image is bad", "exit 1: no usable image", EVAL,
         mini_voc(remove("Annotations/000001.xml"), ids=("000001",)), message=r"no usable image in .*test\.txt"),
    Case("from-txt-other-split", "VOC data", "`eval --from-txt` files whose image ids are all outside the split",
         "exit 1: none of the ids is in the split (was: mAP 0.0000, exit 0)", FROM_TXT,
         mini_voc(det_files(("009999", "009998"))), message=r"none of the 2 image ids in .* is in VOC2007 test"),
    Case("from-txt-some-unknown", "VOC data", "`eval --from-txt` files with some ids outside the split",
         "scored, with a warning counting the ignored ids", FROM_TXT, mini_voc(det_files(("000001", "009999"))),
         code=0, message=r"warning: 1 image id\(s\) in .* are not in VOC2007 test and are ignored"),
    # video
    Case("video-truncated", "Video", "a video file cut at 60 % (AVI, its header declares 30 frames)",
         "the frames that decode are processed and written; a warning names the frame where decoding stopped",
         DETECT, image_file("cut.avi", clip(30, keep=0.6)), code=0, outputs=("cut.mp4",),
         message=r"^warning: decoding .*cut\.avi stopped at frame \d+ of the 30 its header declares \(the file is "
                 r"truncated or corrupt\); the \d+ frame\(s\) before it were processed$"),
    Case("video-zero-frames", "Video", "a video file without frames (AVI)", "exit 1: has no decodable frames",
         DETECT, image_file("empty.avi", clip(0)), message=r"video .*empty\.avi has no decodable frames$"),
    Case("video-not-a-video", "Video", "a text file named .mp4", "exit 1: cannot open video", DETECT,
         image_file("notes.mp4", lambda env: b"hello\n" * 100),
         message=r"cannot open video .*notes\.mp4: not a video OpenCV's FFmpeg reads, or its container is truncated"),
    Case("stream-unreachable", "Video", "an RTSP URL nothing answers at", "exit 1 within `--timeout` (default 10 s): "
         "cannot open stream ... unreachable", ("detect", "--weights", "{onnx}", "--source", "rtsp://127.0.0.1:1/live",
                                                "--timeout", "2", "--out", "{out}"),
         message=r"cannot open stream rtsp://127\.0\.0\.1:1/live: unreachable, or no video within 2 s"),
    Case("webcam-missing", "Video", "a webcam index without a camera (`--source 9`)",
         "exit 1: cannot open webcam 9", ("detect", "--weights", "{onnx}", "--source", "9", "--out", "{out}"),
         message=r"cannot open webcam 9: no camera at that index"),
    flag("--vid-stride", "0", error="argument --vid-stride: must lie in [1, 1000], got 0",
         what="`detect --vid-stride 0`"),
    # outputs and signals
    Case("read-only-output", "Outputs", "an output folder that cannot be written",
         "exit 1 before any work: not writable", (*DETECT[:-1], "{out}/sub"), image_file("bus.jpg",
         lambda env: (env.images / "bus.jpg").read_bytes()), message=r"output folder .* is not writable",
         runner="readonly"),
    Case("full-disk", "Outputs", "a full disk (a 10 kB file-size limit)",
         "exit 1: File too large; no half-written file", DETECT,
         image_file("bus.jpg", lambda env: (env.images / "bus.jpg").read_bytes()),
         message=r"File too large: .*out/bus\.jpg$", runner="fsize"),
    Case("sigint", "Outputs", "Ctrl-C in the middle of detect", "exit 130: interrupted; every file written is whole",
         DETECT, links(400), code=130, message=r"^interrupted$", runner="sigint", extra=whole_files_only),
    Case("checkpoint-full-disk", "Outputs", "a full disk while a checkpoint is written (`prune -o`, a 10 kB "
         "file-size limit; `train` writes its epoch checkpoints through the same function)",
         "exit 1: cannot write checkpoint ...: File too large (was: torch's RuntimeError traceback); no partial file",
         ("prune", "--weights", "{pt}", "--percent", "0.1", "--img", "64", "-o", "{out}/p.pt"),
         message=r"cannot write checkpoint .*out/p\.pt: File too large$", runner="fsize"),
    Case("folder-named-jpg", "Images", "a folder named `sub.jpg` inside `--source`",
         "left out with a note: a folder is not an image (was: exit 1, image not found)", DETECT,
         lambda env: {"src": (env.tmp / "src" / "sub.jpg").mkdir(parents=True) or photos(env)}, code=0,
         message=r"note: skipped 1 entry named like an image but not a file \(first: .*sub\.jpg\)",
         outputs=("bus.jpg", "zidane.jpg")),
    # outputs that name an input
    Case("quantize-over-input", "Outputs over inputs", "`quantize --onnx m.onnx -o m.onnx`",
         "exit 1 before any work: the output is the input (was: the float model replaced by the INT8 one)",
         ("quantize", "--onnx", "{model}", "--calib", "{images}", "-o", "{model}"),
         inputs(model=copy_of("m.onnx", lambda env: env.onnx)),
         message=r"-o .*m\.onnx is the input --onnx .*m\.onnx: writing it would destroy the input",
         extra=unchanged("m.onnx")),
    Case("export-over-input-link", "Outputs over inputs", "`export --weights m.pt -o m.pt`, m.pt a symlink to the "
         "checkpoint", "exit 1 before any work: paths are compared with symlinks followed (was: the checkpoint "
         "replaced by an ONNX file)", ("export", "--weights", "{model}", "--img", "64", "-o", "{out}/../m.pt"),
         lambda env: {"model": (env.tmp / "m.pt").symlink_to(env.pt) or env.tmp / "m.pt"},
         message=r"-o .*m\.pt is the input --weights .*m\.pt: writing it would destroy the input"),
    Case("report-json-over-input", "Outputs over inputs", "`report --weights m.pt --json m.pt`",
         "exit 1 before any work (was: the checkpoint replaced by a 582-byte JSON)",
         ("report", "--weights", "{model}", "--img", "64", "--runs", "1", "--json", "{model}"),
         inputs(model=copy_of("m.pt", lambda env: env.pt)),
         message=r"--json .*m\.pt is the input --weights .*m\.pt", extra=unchanged("m.pt")),
    Case("detect-out-is-source", "Outputs over inputs", "`detect --source s --out s`",
         "exit 1 before any work: the output folder holds the input photos (was: photos replaced by drawn copies)",
         ("detect", "--weights", "{onnx}", "--img", "320", "--source", "{src}", "--out", "{src}"),
         lambda env: {"src": photos(env)},
         message=r"--out .*src holds the input --source .*src/bus\.jpg", extra=photos_intact),
    Case("deploy-force-over-input", "Outputs over inputs", "`deploy --weights d/m.pt -o d --force`",
         "exit 1 before any work (was: --force would replace the folder holding the weights)",
         ("deploy", "--weights", "{model}", "--img", "64", "-o", "{bundle}", "--force"),
         lambda env: {**inputs(model=copy_of("d/m.pt", lambda env: env.pt))(env), "bundle": env.tmp / "d"},
         message=r"-o .*/d holds the input --weights .*d/m\.pt", extra=unchanged("d/m.pt")),
    Case("two-outputs-one-path", "Outputs over inputs", "`report --json r --md r`", "exit 1 before any work",
         ("report", "--weights", "{pt}", "--img", "64", "--runs", "1", "--json", "{out}/r", "--md", "{out}/r"),
         message=r"--md .*out/r is also --json: give each output its own path"),
    # training
    Case("resume-copy-elsewhere", "Training", "`train --resume COPY.pt` with the copy outside a `weights/` folder",
         "exit 1: resumes only `RUN/weights/last.pt`, in `RUN` (was: wrote into the run folder recorded inside, "
         "cutting that finished run's results.csv)", ("train", "--resume", "{model}"),
         training_checkpoint("copy.pt"),
         message=r"cannot resume .*copy\.pt: a resumable checkpoint is <run>/weights/last\.pt",
         extra=other_run_untouched),
    Case("resume-epochs-too-few", "Training", "`train --resume .../last.pt --epochs 3` after 5 finished epochs",
         "exit 1: names the epochs done (more --epochs than that extend the schedule; was: --epochs ignored)",
         ("train", "--resume", "{model}", "--epochs", "3"), training_checkpoint("run/weights/last.pt", epoch=4),
         message=r"--epochs 3: .*last\.pt has finished 5 epoch\(s\) already; give more than 5",
         extra=other_run_untouched),
    Case("finetune-resume-no-weights", "Training", "`finetune --resume X` without `--weights`",
         "accepted: the resume goes on to check X (was: usage error, --weights required)",
         ("finetune", "--resume", "{model}"), training_checkpoint("copy.pt"),
         message=r"cannot resume .*copy\.pt: a resumable checkpoint"),
    Case("resume-with-weights", "Training", "`finetune --resume X --weights W`",
         "exit 1: --weights is not used with --resume (was: required, then ignored)",
         ("finetune", "--resume", "{model}", "--weights", "{pt}"), training_checkpoint("run/weights/last.pt"),
         message=r"--weights is not used with --resume"),
    Case("train-read-only-project", "Training", "`train --project` in a folder that cannot be written",
         "exit 1 before the data is read (was: after a full epoch)", (*TRAIN[:-1], "{out}/sub"),
         lambda env: {"voc": env.voc}, message=r"output folder --project/--name .*out/sub/exp is not writable",
         runner="readonly"),
    Case("hyp-1e30", "Training", "hyp yaml `lr0: 1e30` (YAML 1.1 reads it as a string)",
         "read as a number, then refused by its range (was: `must be a number`)", (*TRAIN, "--hyp", "{hyp}"),
         hyp_file("lr0: 1e30\n"), message=r"hyp\.yaml: lr0=1e30 is outside \[1e-12, 10\]"),
    Case("hyp-1e-3", "Training", "hyp yaml `lr0: 1e-3`, `weight_decay: 5e-4` (strings to YAML 1.1)",
         "read as the numbers meant", call=load_hyp_call("lr0: 1e-3\nweight_decay: 5e-4\n")),
    Case("no-labelled-objects", "Training", "a training split whose images hold no labelled object",
         "a warning on stderr, then training goes on (was: silence)", call=unlabelled_split),
    # model yaml
    Case("yaml-repeat-word", "Model yaml", "a model yaml (`--cfg`, or as `--weights`) with repeat count `three`",
         "exit 1 naming the layer row (was: TypeError traceback)",
         ("prune", "--weights", "{model}", "--percent", "0.1", "--img", "64", "-o", "{out}/p.pt"),
         bad_model_yaml(lambda cfg: cfg["backbone"][2].__setitem__(1, "three")),
         message=r"model yaml layer 2 .*: the repeat count must be a positive integer, got 'three'"),
    Case("yaml-args-not-list", "Model yaml", "a model yaml whose layer args are `64`, not a list",
         "exit 1 naming the layer row (was: 'int' object is not subscriptable)",
         ("prune", "--weights", "{model}", "--percent", "0.1", "--img", "64", "-o", "{out}/p.pt"),
         bad_model_yaml(lambda cfg: cfg["backbone"][0].__setitem__(3, 64)),
         message=r"model yaml layer 0 .*: args must be a list, got 64"),
    Case("yaml-from-later-layer", "Model yaml", "a model yaml whose layer takes input from a later layer",
         "exit 1 naming the layer row",
         ("prune", "--weights", "{model}", "--percent", "0.1", "--img", "64", "-o", "{out}/p.pt"),
         bad_model_yaml(lambda cfg: cfg["backbone"][1].__setitem__(0, 7)),
         message=r"model yaml layer 1 .*: 'from' must be an earlier layer's index"),
    *(Case(f"yaml-{key.replace('_', '-')}-{text}", "Model yaml", f"a model yaml with `{key}: {text}`",
           "exit 1 naming the field (was: ValueError/OverflowError traceback)",
           ("prune", "--weights", "{model}", "--percent", "0.1", "--img", "64", "-o", "{out}/p.pt"),
           bad_model_yaml(lambda cfg, key=key, value=value: cfg.__setitem__(key, value)),
           message=rf"model yaml {re.escape(key)}.* must be a (finite positive|positive whole) number, got {text}")
      for key, value, text in (("depth_multiple", float("nan"), "nan"), ("width_multiple", float("inf"), "inf"),
                               ("nc", float("nan"), "nan"), ("nc", float("inf"), "inf"))),
    # slimming
    Case("slim-classes-mismatch", "Slimming", "`slim` with an 80-class COCO model on VOC data and no `--classes voc`",
         "exit 1 before any stage, no run folder (was: pruned, wrote pruned.pt, then failed; the folder could "
         "never finish)", ("slim", "--weights", "{pt}", "--data", "{voc}", "--project", "{out}"),
         lambda env: {"voc": env.voc}, message=r"predicts 80 classes .* has 20 .*add --classes voc"),
    Case("slim-select-test", "Slimming", "`slim --select-split test` (choosing on the held-out split)",
         "exit 1 before any work: the test split never chooses anything",
         ("slim", "--weights", "{pt}", "--classes", "voc", "--data", "{voc}", "--select-split", "test",
          "--project", "{out}"), lambda env: {"voc": env.voc},
         message=r"--select-split test: the test split is held out"),
    Case("export-saved-size", "Models", "`export --weights final.pt` (a slim run's result, saved for 160) without "
         "`--img`", "exported at the saved 160, and says so (was: 640, unlike detect/eval/speed)",
         ("export", "--weights", "{model}", "-o", "{out}/m.onnx"), saved_at(160), code=0,
         extra=lambda env, result: (stdout_says(r"160x160: saved in .*final\.pt")(env, result),
                                    onnx_input_is("out/m.onnx", 160)(env, result))),
    Case("deploy-saved-size", "Models", "`deploy --weights final.pt` (saved for 160) without `--img`",
         "the bundle is built for the saved 160, and says so (was: 512)",
         ("deploy", "--weights", "{model}", "-o", "{out}"), saved_at(160), code=0,
         extra=lambda env, result: (stdout_says(r"input 160x160: saved in .*final\.pt")(env, result),
                                    onnx_input_is("out/models/yolov5/model.onnx", 160)(env, result))),
    # slim run folders
    Case("slim-deploy-holds-run", "Slim runs", "`slim --project dl1 --name exp --deploy dl1` (the bundle folder "
         "holds the run)", "exit 1 before any work (was: exit 0, and the bundle replaced dl1/exp: final.pt, "
         "final.onnx, eval.json and plan/ lost)", (*SLIM, "--name", "exp", "--deploy", "{out}"), voc_only,
         message=r"--deploy .*/out holds the run folder .*/out/exp"),
    Case("slim-deploy-inside-run", "Slim runs", "`slim --deploy runs/q/plan` (inside the run folder)",
         "exit 1 before any work (was: the plan replaced by the bundle)",
         (*SLIM, "--name", "q", "--deploy", "{out}/q/plan"), voc_only,
         message=r"--deploy .*/out/q/plan lies inside the run folder .*/out/q"),
    Case("slim-deploy-written-meanwhile", "Slim runs", "a `--deploy` folder someone wrote into after the run "
         "started", "the deploy stage checks again and refuses: a non-empty folder the run did not create is never "
         "replaced (was: replaced without a recheck)", call=deploy_written_meanwhile, error=AscendSlimError,
         message=r"deploy folder .*bundle is not empty any more .* this run did not create it"),
    Case("slim-same-name-race", "Slim runs", "two `slim`/`plan` runs started together with one `--project/--name`",
         "the folder is made without exist-ok: the second run takes the next free name (was: both ran in one "
         "folder, 3 of 3 tries)", call=claimed_twice),
    Case("slim-exist-ok-holds-run", "Slim runs", "`slim --exist-ok` into a folder that holds a slim run",
         "exit 1: resume it or choose another name (was: one run's results overwrote the other's)",
         (*SLIM, "--name", "exp", "--exist-ok"), lambda env: {"voc": env.voc, "_": write(
             env.tmp / "out" / "exp" / "slim.json", b"{}")}, message=r"out/exp already holds a slim run: resume it"),
    Case("slim-resume-default-value", "Slim runs", "`slim --resume RUN --target-latency 0.3` (a value equal to a "
         "CLI default) on a run planned for 0.1", "honoured: the plan re-chooses from its measurements and the "
         "stages after it run again (was: the run went on with 0.1)", call=resumed(
             "slim", "--target-latency", "0.3", plan={"chosen": CHOSEN},
             check=lambda run: run.config.target_latency == 0.3 and "plan" not in run.records)),
    Case("slim-resume-one-objective-flag", "Slim runs", "`slim --resume RUN --max-drop 50` (or `--confidence "
         "0.95`) alone", "the run's other objective values are kept (was: the budget reset to 0.3, breaking the "
         "user's 0.1)", call=resumed("slim", "--max-drop", "50", plan={"chosen": CHOSEN}, check=lambda run: (
             run.config.target_latency, run.config.max_drop, run.config.confidence) == (0.1, 50.0,
                                                                                         DEFAULT_CONFIDENCE))),
    Case("slim-resume-other-flag", "Slim runs", "`slim --resume RUN --img 320` (a setting the run was made with)",
         "exit 1 naming the flag; flags given with the run's own values are accepted",
         ("slim", "--resume", "{run}", "--img", "320"), lambda env: {"run": slim_run(env, img_size=640)},
         message=r"--img cannot change when resuming"),
    Case("plan-resume", "Slim runs", "`plan --resume RUN` of a plan-only run", "goes on (was: always refused, "
         "`--plan-only cannot change`)", call=resumed("plan", plan={"chosen": None}, plan_only=True,
                                                       check=lambda run: run.config.plan_only)),
    Case("slim-resume-plan-only-objective", "Slim runs", "`slim --resume P --target-latency 0.4` of a plan-only "
         "run", "the plan re-chooses from its measurements and the model is built (was: refused, or exit 0 "
         "building nothing)", call=resumed("slim", "--target-latency", "0.4", plan={"chosen": None},
                                           plan_only=True, target_latency=None, check=lambda run: (
                                               not run.config.plan_only and "plan" not in run.records))),
    Case("slim-copied-run", "Slim runs", "a run folder copied (or moved) elsewhere", "its records are relative to "
         "the run folder, so the copy uses its own files and a moved run resumes; inputs are kept absolute (was: "
         "the copy evaluated the original folder's final.onnx)", call=copied_run),
    Case("slim-record-damaged", "Slim runs", "a slim.json stage record with a missing or extra field",
         "exit 1 naming the stage (was: `PlanResult.__init__() missing ... 'contributions'` traceback)",
         ("slim", "--resume", "{run}"), damaged_record,
         message=r"slim\.json: the record of stage 'plan' is damaged .*contributions"),
    Case("plan-cache-other-weights", "Slim runs", "a plan/ folder made for other weights, its measurements.json "
         "deleted as an earlier message told", "refused as a whole: every file in plan/ is tied to one settings "
         "key (was: the old model's candidate files and match records reused for the new weights)",
         call=plan_cache_of_other_weights, error=AscendSlimError,
         message=r"plan was made for other settings \(weights differ\): delete the whole folder"),
    Case("plan-cache-damaged-npz", "Slim runs", "a damaged `measurements.original.*.npz`",
         "one line naming the file and the folder to delete (was: a traceback)", call=damaged_match_records,
         error=AscendSlimError, message=r"cached match records .*npz are damaged \(BadZipFile\)"),
    # slim splits and settings, refused before any stage
    Case("slim-select-is-eval", "Slimming", "`slim --val-split trainval` (the selection split, trainval, is also "
         "the evaluation split)", "exit 1 before any work (was: only the name test was refused; the report said "
         "\"evaluated once on\" images it chose on)", (*SLIM, "--val-split", "trainval"), voc_only,
         message=r"selection split trainval shares 269 image\(s\) with the evaluation split trainval"),
    Case("slim-select-same-content", "Slimming", "a selection split listing the evaluation split's images under "
         "another name", "exit 1: the image ids are compared, not the names", (*SLIM_MINI, "--select-split", "mine"),
         mini_voc(split_file("mine", "000001\n000004\n000006\n")),
         message=r"selection split mine shares 3 image\(s\) with the evaluation split test"),
    Case("slim-select-unlabelled", "Slimming", "a selection split with no labelled object",
         "exit 1 before any work (was: `selection mAP@0.5 nan`, exit 0, a bare NaN in plan.json)",
         (*SLIM_MINI, "--select-split", "mine"), mini_voc(changes(no_objects("000006"), split_file("mine", "000006\n")),
                                                           list_text="000001\n000004\n"),
         message=r"the selection split mine of .* has no labelled object"),
    Case("slim-val-missing", "Slimming", "`slim --val-split nonexistent`", "exit 1 before any work (was: after "
         "the plan, leaving a run that could not finish)", (*SLIM, "--val-split", "nonexistent"), voc_only,
         message=r"nonexistent"),
    Case("slim-yaml-val-is-train", "Slimming", "a data yaml whose `val` is its `train` folder",
         "exit 1 before any work: the selection (train) and evaluation (val) splits share images",
         ("slim", "--weights", "{pt}", "--classes", "voc", "--data", "{yaml}", "--cuts", "none", "--no-int8",
          "--project", "{out}"), data_yaml(val="images/train"),
         message=r"selection split train shares 2 image\(s\) with the evaluation split val"),
    Case("slim-yaml-without-val", "Slimming", "a data yaml without `val:`", "exit 1 before any work (was: after "
         "the plan)", ("slim", "--weights", "{pt}", "--classes", "voc", "--data", "{yaml}", "--cuts", "none",
                       "--no-int8", "--project", "{out}"), data_yaml(), message=r"data\.yaml has no 'val' entry"),
    Case("slim-empty-test-list", "Slimming", "an empty evaluation (test) list", "exit 1 before any work (was: "
         "after the plan)", (*SLIM_MINI, "--select-split", "mine"),
         mini_voc(split_file("mine", "000001\n"), list_text=""), message=r"test\.txt lists no images"),
    *(Case(f"slim-config-{name}", "Slimming", f"`SlimConfig({name}={value!r})` in the library",
           "AscendSlimError naming the setting, as the CLI's flag types would (was: a traceback, or a failure after "
           "the plan)", call=slim_config(**{key: value}), error=AscendSlimError,
           message=rf"{key} must be .*got {re.escape(repr(value))}")
      for name, key, value in (("cuts", "cuts", 0.1), ("img-sizes", "img_sizes", 320),
                               ("confidence", "confidence", "0.9"), ("latency-runs", "latency_runs", 0),
                               ("round-to-0", "round_to", 0), ("round-to-negative", "round_to", -16))),
    # report
    Case("report-static-other-size", "Report", "`report --img 128` on a static 64 ONNX, `--compare` a .pt",
         "the ONNX is measured at its own 64x64, the table has an input-size row and says the sizes differ, "
         "no GFLOPs/latency ratio (was: 64 figures labelled @128, a 4x 'advantage')",
         ("report", "--weights", "{model}", "--compare", "{pt}", "--img", "128", "--runs", "1"),
         static_onnx(64), code=0, extra=stdout_says_all(
             r"input size\s+64x64\s+128x128", r"(?m)GFLOPs at input size\s+[\d.]+\s+[\d.]+\s+-$",
             r"note: A is a static ONNX model, measured at its own input size 64x64, not at 128",
             r"note: A and B run at different input sizes")),
    # the C++ core and model facts through the API
    Case("core-threads-40000", "API", "`core.postprocess` on 40,000 images with `num_threads=40000`",
         "a correct result (threads are capped at the machine; was: abort, exit 134)",
         call=core_call("postprocess", [np.zeros((40000, 1, 2, 2, 6), np.float32)], [[[10, 13]]], [8.0],
                        num_threads=40000)),
    Case("core-nms-float-ids", "API", "`core.nms` with class ids 1.5 or 1e20", "ValueError: not a whole number "
         "within +-2^53 (was: truncated, huge ids collided)", call=core_call(
             "nms", np.zeros((2, 4), np.float32), np.ones(2, np.float32), np.array([1e20, 1e20 + 1e5])),
         error=ValueError, message=r"classes: float64 id 1e\+20 at index 0 is not a whole number"),
    Case("core-letterbox-float", "API", "`core.letterbox(img, (640.7, 640))`",
         "ValueError (was: silently truncated)", call=core_call("letterbox", np.zeros((8, 8, 3), np.uint8),
                                                                  (640.7, 640)),
         error=ValueError, message=r"image size must be an int or \(height, width\) ints, got \(640\.7, 640\)"),
    Case("core-decoded-logits", "API", "`core.postprocess_decoded` given objectness 3.0 (logits)",
         "ValueError: not a probability (was: accepted)",
         call=core_call("postprocess_decoded", np.full((1, 4, 7), 3.0, np.float32)), error=ValueError,
         message=r"pred: objectness 3 \(image 0, row 0\) is not a probability in \[0, 1\]"),
    Case("core-nms-nan-box", "API", "`core.nms` given a box with a NaN coordinate (the highest score)",
         "dropped (was: kept)", call=core_result(
             "nms", (np.array([[0, 0, 10, 10], [np.nan, 0, 10, 10]], np.float32), np.array([0.5, 0.9], np.float32),
                     np.zeros(2, np.int64)), lambda keep: keep.tolist() == [0])),
    Case("core-nms-inverted", "API", "`core.nms` given two identical boxes written (x2, y2, x1, y1)",
         "both dropped: inverted corners are not a box (was: both kept, IoU 0)", call=core_result(
             "nms", (np.array([[10, 10, 0, 0], [10, 10, 0, 0], [0, 0, 5, 5]], np.float32),
                     np.array([0.9, 0.8, 0.5], np.float32), np.zeros(3, np.int64)),
             lambda keep: keep.tolist() == [2])),
    Case("core-decoded-negative-wh", "API", "`core.postprocess_decoded` given a row with width -10",
         "the row is dropped (was: turned into an inverted box)", call=core_result(
             "postprocess_decoded", (decoded_rows((50, 50, -10, 20), (50, 50, 10, 20)),),
             lambda dets: len(dets[0]) == 1 and dets[0][0, :4].tolist() == [45, 40, 55, 60])),
    Case("meta-api", "API", "`ModelMeta(names=['a', 'b'], strides=[8, -16, 32], ...)`",
         "AscendSlimError naming `strides`", call=meta_call(strides=[8, -16, 32]),
         error=AscendSlimError, message=r"strides must be a list of positive numbers, got \[8, -16, 32\]"),
]


def markdown() -> str:
    """The README's "Bad input" section: the catalogue as tables, one per group."""
    lines = ["## Bad input", "",
             "Every row is a case of `tests/test_bad_input.py` (the catalogue is `tests/bad_input_catalogue.py`): "
             "the exit code, a one-line `ascend-slim <command>: error: ...` naming the problem (usage errors: "
             "argparse's usage and one error line), no traceback, and no partial output (outputs are written "
             "through a temporary file and renamed; a failed run leaves no file behind)."]
    for group in dict.fromkeys(c.group for c in CASES):
        lines += ["", f"**{group}**", "", "| input | what happens |", "| --- | --- |"]
        lines += [f"| {c.what} | {c.answer} |" for c in CASES if c.group == group]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
