"""Thread safety of the C++ core and proof that its long calls release the GIL."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import reference as ref

from ascend_slim import core

ANCHORS, STRIDES = ref.YOLOV5_ANCHORS, ref.YOLOV5_STRIDES


@pytest.fixture(scope="module")
def batch() -> list[np.ndarray]:
    return ref.detector_like_heads(np.random.default_rng(0), batch=6, img_size=320, objects=30)


def test_parallel_batch_equals_serial(batch):
    serial = core.postprocess(batch, ANCHORS, STRIDES, conf_thres=0.001, multi_label=True)
    for threads in (2, 3, 8):
        parallel = core.postprocess(batch, ANCHORS, STRIDES, conf_thres=0.001, multi_label=True,
                                    num_threads=threads)
        for a, b in zip(parallel, serial):
            np.testing.assert_array_equal(a, b)


def test_concurrent_calls_from_python_threads(batch, images_dir):
    import cv2

    img = cv2.imread(str(images_dir / "bus.jpg"))
    want_dets = core.postprocess(batch, ANCHORS, STRIDES, conf_thres=0.01)
    want_tensor = core.preprocess(img, 320)[0]

    def work(i: int) -> bool:
        dets = core.postprocess(batch, ANCHORS, STRIDES, conf_thres=0.01, num_threads=1 + i % 2)
        tensor = core.preprocess(img, 320)[0]
        return all(np.array_equal(a, b) for a, b in zip(dets, want_dets)) and np.array_equal(tensor, want_tensor)

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, range(12)))


def _progress_during(call) -> int:
    """Iterations a second Python thread completes while ``call`` runs in this thread.

    The switch interval is raised so the interpreter never preempts the calling thread on its own: if the
    call kept the GIL, the counter could not move between the two reads, however long the call takes.
    """
    counter, stop = [0], threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0)  # hand the GIL back so the caller can resume after its call

    old = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    thread = threading.Thread(target=spin)
    try:
        thread.start()
        while counter[0] == 0:
            time.sleep(0.001)
        before = counter[0]
        call()
        return counter[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(old)
        thread.join()


def test_long_calls_release_the_gil(batch, images_dir):
    import cv2

    big = np.repeat(np.repeat(cv2.imread(str(images_dir / "bus.jpg")), 3, axis=0), 3, axis=1)
    assert _progress_during(lambda: sum(range(3_000_000))) == 0  # the probe sees a call that keeps the GIL
    calls = {
        "postprocess": lambda: core.postprocess(batch, ANCHORS, STRIDES, conf_thres=0.0, multi_label=True),
        "preprocess": lambda: core.preprocess([big] * 4, 1280),
    }
    for name, call in calls.items():
        # Any single call during which the other thread moved proves the release; a few tries absorb
        # a scheduler that happens not to run the other thread during one short call.
        assert any(_progress_during(call) > 0 for _ in range(5)), name


def test_thread_counts_beyond_the_batch_and_the_machine_are_capped():
    """40,000 requested threads (or 10^12) once aborted the interpreter; the core now caps them."""
    heads = [np.zeros((40000, 1, 2, 2, 6), np.float32)]
    for threads in (40000, 10**12):
        out = core.postprocess(heads, [[[10, 13]]], [8.0], num_threads=threads)
        assert len(out) == 40000 and all(d.shape == (0, 6) for d in out)


def test_a_worker_exception_reaches_the_caller():
    pred = np.full((8, 50, 7), 0.5, np.float32)
    pred[5, 20, 4] = 4.0  # a logit in image 5: raised on some worker thread
    with pytest.raises(ValueError, match=r"objectness 4 \(image 5, row 20\)"):
        core.postprocess_decoded(pred, num_threads=4)


REFUSED_THREADS = """
import resource
import numpy as np
from ascend_slim import core
heads = [np.random.default_rng(0).normal(-2, 3, (6, 3, 8, 8, 9)).astype(np.float32)]
anchors = np.full((1, 3, 2), 20.0)
want = core.postprocess(heads, anchors, [8.0])
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
vm = int(status["VmSize"].split()[0]) * 1024
# Room for small allocations but not for a thread's stack (8 MiB by default): thread creation fails.
resource.setrlimit(resource.RLIMIT_AS, (vm + (4 << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
got = core.postprocess(heads, anchors, [8.0], num_threads=8)
print(all(np.array_equal(a, b) for a, b in zip(got, want)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_refused_threads_fall_back_to_fewer():
    """Under an address-space limit the system refuses new threads; the call still returns the right result."""
    import subprocess

    run = subprocess.run([sys.executable, "-c", REFUSED_THREADS], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "True"
