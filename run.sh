#!/usr/bin/env bash
# ascend-slim entry point (the Ascend YOLOv5Prune sample's interface, on any backend).
#
#   bash run.sh detect <image_set.txt> <image_dir> [flags]   boxes drawn into image_result/
#   bash run.sh speed  [<image_set.txt> <image_dir>] [flags] wall-clock timing, sequential and pipelined
#   bash run.sh eval   <VOCdevkit> [flags]                   VOC07 metrics, txt_result/ and eval_result/
#   bash run.sh slim   [VOCdevkit] [flags]                   compound slimming of the official yolov5n on VOC
#                                                            (plan on trainval, scored on test), runs/slim/
#   bash run.sh test                                         ruff + the test suite
#   bash run.sh sanitize                                     the core's tests on an ASan + UBSan build
#   bash run.sh setup                                        only create/refresh the virtualenv
#
# The model comes from WEIGHTS=... or --weights (.pt, .onnx or .om); without either, the official
# yolov5s.pt is downloaded once. Extra flags go to `ascend-slim <task>` (see `ascend-slim <task> --help`).
# The first run creates .venv (override with ASCEND_SLIM_VENV) and installs ascend-slim into it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ASCEND_SLIM_VENV:-$ROOT/.venv}"
DATA="${ASCEND_SLIM_DATA:-$ROOT/../shared/data}"

die() { echo "run.sh: error: $*" >&2; exit 2; }

setup() {
  local py="${PYTHON:-python3}"
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV" || die "cannot create a virtualenv with $py"
  # Reinstall only when the sources changed since the last install.
  local stamp
  stamp="$(cd "$ROOT" && cat pyproject.toml CMakeLists.txt $(git ls-files cpp python models pipeline 2>/dev/null \
            || find cpp python models pipeline -type f | sort) | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$VENV/.ascend-slim-stamp" 2>/dev/null)" != "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q torch==2.13.0            # CPU build; plain `torch` pulls CUDA
    "$VENV/bin/python" -m pip install -q "$ROOT[torch,test,openvino]"   # openvino: the OpenVINO backend + NNCF
    echo "$stamp" > "$VENV/.ascend-slim-stamp"
  fi
}

task="${1:-}"
[ -n "$task" ] || die "usage: bash run.sh {detect|speed|eval|slim|test|sanitize|setup} ... (see the header of run.sh)"
shift
weights=()
[ -n "${WEIGHTS:-}" ] && weights=(--weights "$WEIGHTS")

case "$task" in
  setup)
    setup ;;
  test)
    setup
    cd "$ROOT"
    "$VENV/bin/ruff" check .
    "$VENV/bin/python" -m pytest -q tests "$@" ;;
  sanitize)
    setup
    cd "$ROOT"
    san="$ROOT/build/sanitize"
    rm -rf "$san/dist" "$san/site"
    "$VENV/bin/python" -m pip wheel -q --no-deps -w "$san/dist" . -Cbuild-dir="$san/build" \
      -Ccmake.define.ASCEND_SLIM_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo
    "$VENV/bin/python" -m zipfile -e "$san"/dist/ascend_slim-*.whl "$san/site"
    export PYTHONPATH="$san/site" LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    export ASAN_OPTIONS=halt_on_error=1:detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    "$VENV/bin/python" -c 'import sys, ascend_slim._core as c; sys.exit(sys.argv[1] not in c.__file__)' "$san/site" \
      || die "$VENV's ascend-slim shadows the sanitizer build (an editable install?): use a plain install"
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_core*.py "$@" ;;
  detect)
    [ $# -ge 2 ] || die "usage: bash run.sh detect <image_set.txt> <image_dir> [flags]"
    set_file="$1"; image_dir="$2"; shift 2
    setup
    "$VENV/bin/ascend-slim" detect "${weights[@]}" --image-set "$set_file" --source "$image_dir" \
      --out image_result "$@" ;;
  speed)
    if [ $# -ge 2 ] && [ "${1#-}" = "$1" ]; then
      set_file="$1"; image_dir="$2"; shift 2
    else
      set_file="$DATA/VOCdevkit/VOC2007/ImageSets/Main/test.txt"; image_dir="$DATA/VOCdevkit/VOC2007/JPEGImages"
      [ -f "$set_file" ] || die "no images given and no shared data at $DATA: bash run.sh speed <image_set.txt> <image_dir>"
    fi
    setup
    "$VENV/bin/ascend-slim" speed "${weights[@]}" --image-set "$set_file" --source "$image_dir" --pipelined "$@" ;;
  eval)
    [ $# -ge 1 ] || die "usage: bash run.sh eval <VOCdevkit> [flags]"
    voc="$1"; shift
    setup
    "$VENV/bin/ascend-slim" eval "${weights[@]}" --data "$voc" --out txt_result "$@" ;;
  slim)
    voc="$DATA/VOCdevkit"
    if [ $# -ge 1 ] && [ "${1#-}" = "$1" ]; then voc="$1"; shift; fi
    [ -d "$voc" ] || die "no VOCdevkit at $voc: bash run.sh slim <VOCdevkit> [flags]"
    slim_weights="${WEIGHTS:-$DATA/weights/yolov5n.pt}"
    setup
    # The recipe's defaults (plan on trainval, >= 3.3x faster: --target-latency 0.3); flags after the folder override.
    "$VENV/bin/ascend-slim" slim --weights "$slim_weights" --classes voc --data "$voc" "$@" ;;
  *)
    die "unknown task '$task': use detect, speed, eval, slim, test, sanitize or setup" ;;
esac
