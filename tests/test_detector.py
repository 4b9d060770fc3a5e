"""Detector end to end on the official yolov5n and the shared photos."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ascend_slim import AscendSlimError, Detector
from ascend_slim.imageio import read_image


@pytest.fixture(scope="module")
def detector(yolov5n_onnx: Path) -> Detector:
    return Detector(yolov5n_onnx)


def test_bus_and_zidane(detector: Detector, images_dir: Path) -> None:
    bus = detector.predict(images_dir / "bus.jpg")
    assert Counter(bus.labels) == {"person": 4, "bus": 1}
    zidane = detector.predict(images_dir / "zidane.jpg")
    assert Counter(zidane.labels) == {"person": 2, "tie": 1}
    for dets in (bus, zidane):
        h, w = dets.image_shape
        assert np.all(dets.boxes[:, [0, 2]] >= 0) and np.all(dets.boxes[:, [0, 2]] <= w)
        assert np.all(dets.boxes[:, [1, 3]] >= 0) and np.all(dets.boxes[:, [1, 3]] <= h)
        assert np.all(np.diff(dets.scores) <= 0)
        assert dets.to_array().shape == (len(dets), 6)


def test_pt_checkpoint_matches_torch_model(yolov5n_pt: Path, images_dir: Path) -> None:
    """.pt -> cached ONNX -> onnxruntime gives the same boxes as the PyTorch model itself."""
    images = [images_dir / "bus.jpg", images_dir / "zidane.jpg"]
    via_onnx = Detector(yolov5n_pt).predict(images)
    via_torch = Detector(yolov5n_pt, backend="torch").predict(images)
    for a, b in zip(via_onnx, via_torch):
        assert a.labels == b.labels
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


def test_stream_equals_predict(detector: Detector, voc_root: Path) -> None:
    """Concurrent inferences (onnxruntime) come back in input order with the same detections."""
    assert detector.backend.concurrent
    paths = sorted((voc_root / "VOC2007" / "JPEGImages").glob("*.jpg"))[:12]
    streamed = list(detector.stream(paths, prefetch=3, workers=3))
    direct = detector.predict(paths)
    assert [d.source for d in streamed] == [str(p) for p in paths]
    for a, b in zip(streamed, direct):
        np.testing.assert_array_equal(a.to_array(), b.to_array())
    assert all(d.image is None for d in streamed)  # images are not held unless asked for
    kept = list(detector.stream(paths[:3], workers=2, keep_images=True))
    for d, path in zip(kept, paths):
        np.testing.assert_array_equal(d.image, read_image(path))


def test_staged_stream_for_one_device_backends(yolov5n_pt: Path, voc_root: Path) -> None:
    """A backend that runs one inference at a time gets the staged pipeline; same results, same order."""
    det = Detector(yolov5n_pt, backend="torch")
    assert not det.backend.concurrent
    paths = sorted((voc_root / "VOC2007" / "JPEGImages").glob("*.jpg"))[:5]
    streamed = list(det.stream(paths, prefetch=2, workers=2))
    assert [d.source for d in streamed] == [str(p) for p in paths]
    for a, b in zip(streamed, det.predict(paths)):
        np.testing.assert_array_equal(a.to_array(), b.to_array())


def test_class_filter_and_array_input(yolov5n_onnx: Path, images_dir: Path) -> None:
    import cv2

    img = cv2.imread(str(images_dir / "bus.jpg"))
    only_bus = Detector(yolov5n_onnx, classes=["bus"]).predict(img)
    assert only_bus.labels == ["bus"] and only_bus.source is None


def test_onnx_path_never_imports_torch(yolov5n_onnx: Path, images_dir: Path) -> None:
    code = (
        "import sys, ascend_slim\n"
        f"d = ascend_slim.Detector({str(yolov5n_onnx)!r})\n"
        f"assert len(d.predict({str(images_dir / 'bus.jpg')!r})) == 5\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weights="missing.onnx"), "weights not found"),
        (dict(conf_thres=1.5), "thresholds"),
        (dict(img_size=100), "multiple of the model stride 32"),
        (dict(mode="tensorrt"), "mode"),
        (dict(classes=["unicorn"]), "unicorn"),
        (dict(backend="tensorrt"), "unknown backend"),
        (dict(device="tpu"), "unknown device"),
        (dict(device="npu:1"), "runs Ascend .om models"),
        (dict(device="cuda:0"), "CUDAExecutionProvider"),  # this onnxruntime build has no CUDA
    ],
)
def test_bad_arguments(yolov5n_onnx: Path, kwargs: dict, message: str) -> None:
    options = {"weights": yolov5n_onnx, **kwargs}
    with pytest.raises(AscendSlimError, match=message):
        Detector(**options)


def test_corrupt_image_and_model(detector: Detector, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(AscendSlimError, match="cannot decode image"):
        detector.predict(bad)
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"garbage")
    with pytest.raises(AscendSlimError, match="cannot load ONNX model"):
        Detector(fake)


def test_static_model_refuses_other_sizes(yolov5n_pt: Path, tmp_path: Path) -> None:
    from ascend_slim.export import export_onnx
    from ascend_slim.model.checkpoint import load_weights

    static = export_onnx(load_weights(yolov5n_pt)[0], tmp_path / "n320.onnx", img_size=320)
    det = Detector(static)
    assert det.rect is False and det.img_size == (320, 320)
    with pytest.raises(AscendSlimError, match="takes 320x320"):
        Detector(static, img_size=640)
    with pytest.raises(AscendSlimError, match="static input size"):
        Detector(static, rect=True)


def test_om_weights_go_to_the_ascend_backend_with_the_device_index(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import ascend_slim.runtime.factory as backends

    calls = []

    def record(weights, kind, device_id):
        calls.append((Path(weights).name, kind, device_id))
        raise AscendSlimError("recorded")

    monkeypatch.setattr(backends, "open_ascend_backend", record)
    om = tmp_path / "model.om"
    om.write_bytes(b"om")
    for device in ("npu:1", "cpu"):
        with pytest.raises(AscendSlimError, match="recorded"):
            Detector(om, device=device)
    assert calls == [("model.om", "auto", 1), ("model.om", "auto", 0)]
    with pytest.raises(AscendSlimError, match="Ascend device"):
        Detector(om, device="cuda:0")
