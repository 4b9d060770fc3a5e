"""The Ascend deployment bundle: every file the device needs, generated from the model facts.

The same generator writes the repository's top-level ``pipeline/`` and ``models/yolov5/`` files for the sample's
default model (yolov5s, 20 VOC classes, 512x512, default anchors); ``ascend-slim deploy --write-defaults <repo>``
regenerates them. Bundle layout (run the device side from the bundle folder, like the
sample's ``main``)::

    convert.sh                       ATC command: models/yolov5/<name>.onnx -> models/yolov5/<name>.om
    README.txt
    models/yolov5/<name>.onnx        opset 11, input images 1x3xHxW, outputs head0..2 [1,3,h,w,5+nc]
    models/yolov5/<name>.json        model facts for the .om (see model_facts)
    models/yolov5/aipp_yolov5.cfg    static AIPP: NV12 of model size -> RGB/255
    models/yolov5/yolov5_{detect,eval}.cfg               mxpi_modelinfer + libMpYOLOv5PostProcessor.so
    models/yolov5/yolov5_tensorinfer_{detect,eval}.cfg   mxpi_tensorinfer + libyolov3postprocess.so
    models/yolov5/<voc|coco|classes>.names
    pipeline/{detect,eval}.pipeline                      the sample's route
    pipeline/{detect,eval}_tensorinfer.pipeline          the tensorinfer route
    pipeline/raw_tensor.pipeline                         heads only, for the Python MindX backend
    pipeline/video.pipeline                              RTSP camera -> VDEC -> the tensorinfer detect route
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from ..classes import COCO_CLASSES, VOC_CLASSES
from ..errors import AscendSlimError
from ..fileio import atomic_write_text, temporary_folder
from ..meta import ModelMeta
from .aipp import render_aipp, yolov5_aipp
from .atc import OnnxGraphFacts, atc_command, inspect_onnx, render_convert_script
from .model_facts import onnx_meta, sidecar_text
from .pipelines import ModelFiles, detection_pipeline, raw_tensor_pipeline, render_pipeline, video_pipeline
from .postprocess_cfg import (
    DETECT_THRESHOLDS,
    EVAL_THRESHOLDS,
    Thresholds,
    postprocess_cfg,
    render_cfg,
    render_labels,
)
from .sdk import MINDX_ENV, TOOLKIT_ENV

MODEL_DIR = "models/yolov5"
PIPELINE_DIR = "pipeline"
AIPP_FILE = f"{MODEL_DIR}/aipp_yolov5.cfg"
DEFAULT_SOC = "Ascend310"
DEFAULT_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
DEFAULT_STEM = "yolov5s"
EXECUTABLE = ("convert.sh", f"{MODEL_DIR}/atc.sh")


def default_meta(img_size: int = 512) -> ModelMeta:
    """The sample's model: yolov5s on the 20 VOC classes, default anchors, square input."""
    return ModelMeta(names=list(VOC_CLASSES), strides=[8.0, 16.0, 32.0], anchors=DEFAULT_ANCHORS,
                     img_size=(img_size, img_size))


def label_file_name(names: Sequence[str]) -> str:
    known = {tuple(VOC_CLASSES): "voc.names", tuple(COCO_CLASSES): "coco.names"}
    return known.get(tuple(names), "classes.names")


def default_graph_facts(meta: ModelMeta) -> OnnxGraphFacts:
    """The graph facts of an ascend-slim raw-head export of ``meta`` (what ``inspect_onnx`` finds)."""
    h, w = meta.img_size
    return OnnxGraphFacts(input_name="images", input_shape=(1, 3, h, w), out_nodes=None)


def render_ascend_files(meta: ModelMeta, stem: str, facts: OnnxGraphFacts, *, soc: str = DEFAULT_SOC,
                        detect: Thresholds = DETECT_THRESHOLDS, evaluate: Thresholds = EVAL_THRESHOLDS,
                        script: str = "convert.sh") -> dict[str, str]:
    """Relative path -> text of every generated Ascend file for the model ``<MODEL_DIR>/<stem>.onnx``.

    Paths inside pipelines are relative to the tree's root (the application's working folder); the ATC
    command in ``script`` uses paths relative to the script's own folder.
    """
    h, w = meta.img_size
    model = f"{MODEL_DIR}/{stem}"
    label = f"{MODEL_DIR}/{label_file_name(meta.names)}"
    script_dir = os.path.dirname(script) or "."

    def rel(path: str) -> str:
        return os.path.relpath(path, script_dir)

    cmd = atc_command(rel(f"{model}.onnx"), rel(model), soc, facts, rel(AIPP_FILE))
    files = {
        script: render_convert_script(cmd),
        AIPP_FILE: render_aipp(yolov5_aipp(w, h)),
        label: render_labels(meta.names),
        f"{model}.json": sidecar_text(meta, {"om": f"{model}.om", "aipp": AIPP_FILE, "soc": soc,
                                             "input": "NV12 (YUV420SP_U8) of model size via AIPP"}),
    }
    cfg_names = {"modelinfer": "yolov5_{}.cfg", "tensorinfer": "yolov5_tensorinfer_{}.cfg"}
    pipe_names = {"modelinfer": "{}.pipeline", "tensorinfer": "{}_tensorinfer.pipeline"}
    for route in ("modelinfer", "tensorinfer"):
        model_files = ModelFiles(om=f"{model}.om", label=label,
                                 detect_cfg=f"{MODEL_DIR}/{cfg_names[route].format('detect')}",
                                 eval_cfg=f"{MODEL_DIR}/{cfg_names[route].format('eval')}")
        files[model_files.detect_cfg] = render_cfg(postprocess_cfg(meta, detect, route))
        files[model_files.eval_cfg] = render_cfg(postprocess_cfg(meta, evaluate, route))
        for task, resize in (("detect", (h, w)), ("eval", None)):
            doc = detection_pipeline(route, model_files, resize_to=resize)
            files[f"{PIPELINE_DIR}/{pipe_names[route].format(task)}"] = render_pipeline(doc)
        if route == "tensorinfer":
            files[f"{PIPELINE_DIR}/video.pipeline"] = render_pipeline(video_pipeline(model_files, resize_to=(h, w)))
    files[f"{PIPELINE_DIR}/raw_tensor.pipeline"] = render_pipeline(raw_tensor_pipeline(f"{model}.om"))
    return files


def default_files() -> dict[str, str]:
    """The repository's committed Ascend files (the sample's default model)."""
    meta = default_meta()
    return render_ascend_files(meta, DEFAULT_STEM, default_graph_facts(meta), script=f"{MODEL_DIR}/atc.sh")


def write_files(root: str | Path, files: dict[str, str]) -> list[Path]:
    """Write ``files`` under ``root`` atomically, one file at a time.

    Modes stay within what the MindX SDK accepts for its input files (at most 640; scripts 750).
    """
    written = []
    for rel_path, text in files.items():
        path = Path(root, rel_path)
        atomic_write_text(path, text)
        path.chmod(0o750 if rel_path in EXECUTABLE else 0o640)
        written.append(path)
    return written


def render_bundle_readme(stem: str, meta: ModelMeta, soc: str) -> str:
    h, w = meta.img_size
    return f"""ascend-slim deployment bundle: {stem}, {meta.nc} classes, input {w}x{h}, for {soc}
(generated by `ascend-slim deploy`; not run on Ascend hardware by ascend-slim's own tests)

1. Convert on a machine with the CANN toolkit:
       source {TOOLKIT_ENV}
       bash convert.sh            # or: ascend-slim convert --onnx {MODEL_DIR}/{stem}.onnx \\
                                  #       --aipp {AIPP_FILE} --soc {soc} -o {MODEL_DIR}/{stem}
   -> {MODEL_DIR}/{stem}.om, input NV12 (YUV420SP_U8) {w}x{h} through AIPP, outputs 3 FP32 heads.
   For pyACL with float32 NCHW input (RGB/255) instead, convert without AIPP:
       ascend-slim convert --onnx {MODEL_DIR}/{stem}.onnx --no-aipp --soc {soc} -o {MODEL_DIR}/{stem}_float
   ({stem}_float.om needs {stem}_float.json: copy {MODEL_DIR}/{stem}.json to that name.)

2. Run from this folder (relative paths in the pipelines), after also `source {MINDX_ENV}` (MindX SDK):
   - ascend-slim detect --weights {MODEL_DIR}/{stem}.om --backend mindx|acl --source images/
   - the sample's C++ main: pipeline/detect.pipeline and pipeline/eval.pipeline (mxpi_modelinfer +
     libMpYOLOv5PostProcessor.so, {MODEL_DIR}/yolov5_detect.cfg / yolov5_eval.cfg); the *_tensorinfer
     pipelines do the same with mxpi_tensorinfer + mxpi_objectpostprocessor + libyolov3postprocess.so.
   - pipeline/raw_tensor.pipeline returns the raw heads (used by the Python MindX backend).
   - pipeline/video.pipeline: an RTSP camera (H.264) decoded on the device (mxpi_rtspsrc -> mxpi_videodecoder,
     NV12), resized like detect.pipeline, then the tensorinfer route; replace ${{rtspUrl}} with the camera's
     address, or: ascend-slim detect --weights {MODEL_DIR}/{stem}.om --backend mindx --source rtsp://...
   detect pipelines let DVPP resize (keep aspect ratio, top-left); eval pipelines expect a JPEG that was
   letterboxed on the host to exactly {w}x{h}.
"""


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise AscendSlimError(f"output {out} already exists and is not empty; pass --force to replace it")


def _replace_dir(new: Path, out: Path) -> None:
    """Move the finished ``new`` folder to ``out``, replacing whatever is there."""
    if not out.exists():
        os.replace(new, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
    os.replace(out, old / out.name)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


def deploy(weights: str | Path, out: str | Path, img_size: int = 512, soc: str = DEFAULT_SOC,
           classes: str | None = None, detect: Thresholds = DETECT_THRESHOLDS,
           evaluate: Thresholds = EVAL_THRESHOLDS, name: str = "model", force: bool = False) -> Path:
    """Export ``weights`` (.pt) and write the Ascend bundle to ``out`` (built beside it, then renamed)."""
    weights, out = Path(weights), Path(out).resolve()
    if not weights.is_file():
        raise AscendSlimError(f"weights not found: {weights} (pass a .pt checkpoint with --weights)")
    if weights.suffix.lower() != ".pt":
        raise AscendSlimError(f"deploy needs a .pt checkpoint to export, got {weights.name}")
    if not name or Path(name).name != name or name.startswith("."):
        raise AscendSlimError(f"--name {name!r} must be a plain file stem such as 'model'")
    _check_target(out, force)
    from ..export import export_onnx
    from ..model.remap import load_for_classes

    out.parent.mkdir(parents=True, exist_ok=True)
    work = temporary_folder(out.parent, prefix=f".{out.name}.tmp.")
    try:
        with tqdm(total=4, desc="deploy", unit="step") as bar:
            model, _ = load_for_classes(weights, classes)
            bar.update()
            onnx_path = export_onnx(model, work / MODEL_DIR / f"{name}.onnx", img_size=img_size, batch=1, opset=11,
                                    head="raw")
            bar.update()
            meta, facts = onnx_meta(onnx_path), inspect_onnx(onnx_path)
            files = render_ascend_files(meta, name, facts, soc=soc, detect=detect, evaluate=evaluate)
            files["README.txt"] = render_bundle_readme(name, meta, soc)
            write_files(work, files)
            bar.update()
            _check_target(out, force)
            _replace_dir(work, out)
            bar.update()
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out
