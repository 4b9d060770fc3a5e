"""Every row of the bad-input catalogue (tests/bad_input_catalogue.py): exit code, one line naming the problem,
no traceback, no partial output.

Runs go through ``ascend_slim.cli.main`` in this process, except those that need a process of their own: a
read-only output folder (dropping root's override of file permissions), a file-size limit, and SIGINT.
"""

from __future__ import annotations

import ctypes
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bad_input_catalogue import CASES, Case, Env, Result, markdown

from ascend_slim.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
# tqdm's lines, e.g. "detect:  50%|#####     | 1/2 [..." or, without a total (streams), "detect cam: 3frame [..."
PROGRESS_BAR = re.compile(r"^\s*[\w ]+:\s+(\d+%\||\d+\w+ \[)")


def message_lines(stderr: str) -> list[str]:
    """stderr without progress-bar redraws and blank lines."""
    lines = (part for line in stderr.splitlines() for part in line.split("\r"))
    return [line for line in lines if line.strip() and not PROGRESS_BAR.match(line)]


def run_inprocess(argv: list[str], env: Env, capfd: pytest.CaptureFixture) -> Result:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capfd.readouterr()
    return Result(int(code), out, err)


def _drop_file_permission_override() -> None:
    """In the child: take CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of the bounding set, so that even root
    meets a folder's permission bits after exec (no-op without CAP_SETPCAP, i.e. not root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP


def _file_size_limit() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))


def run_subprocess(argv: list[str], env: Env, preexec=None) -> Result:
    run = subprocess.run([sys.executable, "-m", "ascend_slim", *argv], capture_output=True, text=True,
                         preexec_fn=preexec, timeout=300)
    return Result(run.returncode, run.stdout, run.stderr)


def run_readonly(argv: list[str], env: Env, capfd: pytest.CaptureFixture) -> Result:
    out = env.tmp / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        return run_subprocess(argv, env, preexec=_drop_file_permission_override)
    finally:
        out.chmod(0o755)


def run_sigint(argv: list[str], env: Env, capfd: pytest.CaptureFixture) -> Result:
    """Start detect, wait for its first output image, then press Ctrl-C."""
    # SIGINT back to its default in the child: a shell's background job inherits it ignored, and Python then
    # installs no KeyboardInterrupt handler
    proc = subprocess.Popen([sys.executable, "-m", "ascend_slim", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list((env.tmp / "out").glob("*.jpg")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return Result(proc.returncode, out, err)


RUNNERS = {
    "inprocess": run_inprocess,
    "readonly": run_readonly,
    "fsize": lambda argv, env, capfd: run_subprocess(argv, env, preexec=_file_size_limit),
    "sigint": run_sigint,
}


@pytest.fixture
def env(tmp_path: Path, yolov5n_onnx: Path, yolov5n_pt: Path, images_dir: Path, voc_root: Path) -> Env:
    return Env(tmp=tmp_path, onnx=yolov5n_onnx, pt=yolov5n_pt, images=images_dir, voc=voc_root)


def check_library_call(case: Case, env: Env) -> None:
    if case.error is None:
        case.call(env)
        return
    with pytest.raises(case.error, match=case.message):
        case.call(env)


def check_outputs(case: Case, env: Env, result: Result) -> None:
    out = env.tmp / "out"
    written = sorted(p.name for p in out.iterdir() if p.is_file()) if out.is_dir() else []
    assert not [p for p in env.tmp.rglob("*.tmp")], "a temporary file was left behind"
    if case.outputs is not None:
        assert written == sorted(case.outputs)
    elif result.code not in (0, 130):
        assert written == [], f"a failed run left {written}"


def check_messages(case: Case, result: Result) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    lines = message_lines(result.stderr)
    if result.code == 0:
        assert not case.message or any(re.search(case.message, line) for line in lines), result.stderr
        return
    if result.code == 130:
        assert lines == ["interrupted"], result.stderr
        return
    command = case.argv[0]
    if result.code == 2:  # argparse: its usage lines, then one error line
        assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), result.stderr
        lines = lines[-1:]
    assert len(lines) == 1, result.stderr
    assert re.match(rf"ascend-slim {command}: error: .*{case.message}", lines[0]), lines[0]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input(case: Case, env: Env, capfd: pytest.CaptureFixture) -> None:
    if case.call is not None:
        check_library_call(case, env)
        return
    values = {"onnx": env.onnx, "pt": env.pt, "images": env.images, "out": env.tmp / "out"}
    if case.make is not None:
        values.update(case.make(env))
    argv = [arg.format(**values) for arg in case.argv]
    result = RUNNERS[case.runner](argv, env, capfd)
    assert result.code == case.code, result.stderr[-3000:]
    check_messages(case, result)
    check_outputs(case, env, result)
    if case.extra is not None:
        case.extra(env, result)


def test_catalogue_ids_are_unique() -> None:
    assert len({case.id for case in CASES}) == len(CASES)


def test_readme_holds_the_current_catalogue() -> None:
    """README's "Bad input" section is the catalogue's text (regenerate: python tests/bad_input_catalogue.py)."""
    assert markdown() in README.read_text(encoding="utf-8")
