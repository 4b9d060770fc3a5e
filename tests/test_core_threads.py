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
