"""ATC (CANN Ascend Tensor Compiler): build the ONNX -> .om command, inspect the graph, run it.

ascend-slim exports the three raw heads ``[1, na, h, w, 5+nc]`` as graph outputs, so ``--out_nodes`` is not
needed. A graph whose outputs are something else (e.g. an Ultralytics export with the decode subgraph) is cut
at the ``Transpose`` nodes that produce those heads, found in the ONNX graph itself.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import AscendSlimError
from .aipp import parse_aipp
from .sdk import TOOLKIT_ENV

SUCCESS_LINE = "ATC run success"
HEAD_PERM = [0, 1, 3, 4, 2]  # view(bs, na, no, ny, nx).permute(0, 1, 3, 4, 2)


@dataclass(frozen=True)
class OnnxGraphFacts:
    """What the ATC command needs from an ONNX file."""

    input_name: str
    input_shape: tuple[int, int, int, int]
    out_nodes: list[str] | None  # None: the graph outputs already are the raw heads


def _dims(value_info) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def _is_head(dims: Sequence[int | str]) -> bool:
    return (len(dims) == 5 and all(isinstance(d, int) and d > 0 for d in dims) and dims[0] == 1
            and dims[4] > 5)


def inspect_onnx(path: str | Path) -> OnnxGraphFacts:
    """Input name and static NCHW shape, and the ``--out_nodes`` list when the outputs are not the raw heads."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise AscendSlimError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others for a corrupt file
        raise AscendSlimError(f"cannot read ONNX model {path}: {exc}") from None
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise AscendSlimError(f"{path} has {len(inputs)} inputs; ATC conversion here expects one image input")
    dims = _dims(inputs[0])
    if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims):
        raise AscendSlimError(
            f"{path} input {inputs[0].name!r} has shape {dims}; export with a static 1x3xHxW input"
        )
    facts = dict(input_name=inputs[0].name, input_shape=tuple(dims))
    outputs = [_dims(o) for o in graph.output]
    if outputs and all(_is_head(d) for d in outputs) and len({d[4] for d in outputs}) == 1:
        return OnnxGraphFacts(**facts, out_nodes=None)
    return OnnxGraphFacts(**facts, out_nodes=head_transpose_nodes(model, str(path)))


def head_transpose_nodes(model, source: str = "model") -> list[str]:
    """``name:0`` of the Transpose nodes that output raw heads, smallest stride (largest map) first."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # shape inference raises InferenceError and others on broken graphs
        raise AscendSlimError(f"cannot infer tensor shapes of {source}: {exc}") from None
    shapes = {vi.name: _dims(vi) for vi in [*inferred.graph.value_info, *inferred.graph.output]}
    heads = []
    for node in inferred.graph.node:
        if node.op_type != "Transpose":
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        dims = shapes.get(node.output[0], [])
        if perm == HEAD_PERM and _is_head(dims):
            if not node.name:
                raise AscendSlimError(
                    f"{source}: head Transpose producing {node.output[0]!r} has no node name for --out_nodes; "
                    "re-export with `ascend-slim deploy` (raw heads as outputs)"
                )
            heads.append((-dims[2], node.name))
    if not heads:
        raise AscendSlimError(
            f"{source}: outputs are not YOLOv5 raw heads [1,na,h,w,5+nc] and no head Transpose was found; "
            "export with `ascend-slim deploy`"
        )
    return [f"{name}:0" for _, name in sorted(heads)]


def atc_command(onnx: str | Path, output: str | Path, soc: str, facts: OnnxGraphFacts,
                aipp: str | Path | None) -> list[str]:
    """The ``atc`` argv converting ``onnx`` to ``output``.om (``aipp`` None: a float32 NCHW input model)."""
    n, c, h, w = facts.input_shape
    cmd = [
        "atc", "--framework=5", f"--model={onnx}", f"--output={output}", "--input_format=NCHW",
        f"--input_shape={facts.input_name}:{n},{c},{h},{w}",
    ]
    if aipp is not None:
        cmd.append(f"--insert_op_conf={aipp}")
    cmd += [f"--soc_version={soc}", "--output_type=FP32"]
    if aipp is not None:
        cmd.append("--enable_small_channel=1")  # recommended only together with static AIPP
    if facts.out_nodes:
        cmd.append(f"--out_nodes={';'.join(facts.out_nodes)}")
    return cmd


def render_convert_script(cmd: Sequence[str]) -> str:
    """A bash script that runs ``cmd`` from its own folder (paths in ``cmd`` are relative to it)."""
    return (
        "#!/usr/bin/env bash\n"
        "# Convert the ONNX model to an Ascend .om with ATC. Run on a machine with the CANN toolkit:\n"
        f"#   source {TOOLKIT_ENV}\n"
        "set -euo pipefail\n"
        'cd "$(dirname "$0")"\n'
        + " \\\n    ".join(shlex.quote(arg) for arg in cmd) + "\n"
    )


def _om_state(om: Path) -> tuple[int, int, int] | None:
    try:
        st = om.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def run_atc(cmd: Sequence[str], om: str | Path, log: TextIO | None = None) -> Path:
    """Run ATC, streaming its log to ``log`` (stdout by default); success needs exit code 0, the
    "ATC run success" line and a freshly written ``om``."""
    log = log or sys.stdout
    om = Path(om)
    command = shlex.join(cmd)
    if shutil.which(cmd[0]) is None:
        raise AscendSlimError(
            f"ATC ('{cmd[0]}') is not on PATH: install the CANN toolkit (ascend-toolkit), run "
            f"`source {TOOLKIT_ENV}` and re-run, or run yourself: {command}"
        )
    before = _om_state(om)
    tail: deque[str] = deque(maxlen=5)
    succeeded = False
    print(f"running: {command}", file=log, flush=True)
    with subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            succeeded |= SUCCESS_LINE in line
            if line.strip():
                tail.append(line.strip())
        code = proc.wait()
    last = tail[-1] if tail else "(no output)"
    if code != 0:
        raise AscendSlimError(f"ATC failed with exit code {code}: {last}")
    if not succeeded:
        raise AscendSlimError(f"ATC exited 0 but did not print '{SUCCESS_LINE}'; last line: {last}")
    after = _om_state(om)
    if after is None or after == before:
        raise AscendSlimError(f"ATC reported success but did not write {om}")
    return om


def convert(onnx: str | Path, output: str | Path, soc: str, aipp: str | Path | None,
            log: TextIO | None = None) -> Path:
    """Convert ``onnx`` to ``<output>.om`` for ``soc`` (e.g. Ascend310) with ATC; returns the .om path."""
    facts = inspect_onnx(onnx)
    if aipp is not None:
        if not Path(aipp).is_file():
            raise AscendSlimError(f"AIPP config not found: {aipp}")
        cfg = parse_aipp(Path(aipp).read_text(encoding="utf-8", errors="replace"))
        if (cfg.height, cfg.width) != facts.input_shape[2:]:
            raise AscendSlimError(
                f"AIPP source size {cfg.width}x{cfg.height} in {aipp} differs from the model input "
                f"{facts.input_shape[3]}x{facts.input_shape[2]}; regenerate it with `ascend-slim deploy`"
            )
    output = Path(output)
    if output.suffix == ".om":
        output = output.with_suffix("")
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = atc_command(onnx, output, soc, facts, aipp)
    return run_atc(cmd, output.with_name(output.name + ".om"), log=log)
