"""The evaluation library: ``evaluate(detector, dataset)`` on a file or an in-memory model, never touching the
detector; ``Detector(backend=...)``, per-call class filters and scoped stage timing."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from ascend_slim import AscendSlimError, Detector
from ascend_slim.classes import VOC_CLASSES, class_map
from ascend_slim.data.voc import load_voc
from ascend_slim.evaluation import detect_dataset, evaluate, score_detections
from ascend_slim.model.checkpoint import load_weights
from ascend_slim.runtime.torch_backend import TorchBackend

SETTINGS = dict(conf_thres=0.001, iou_thres=0.6, max_det=300, multi_label=True, rect=False)


@pytest.fixture(scope="module")
def small_test_set(voc_root: Path):
    ds = load_voc(voc_root, split="test", class_names=VOC_CLASSES)
    ds.ids = ds.ids[:12]
    ds.annotations = {i: ds.annotations[i] for i in ds.ids}
    return ds


def test_evaluate_in_memory_model_equals_its_onnx_export(yolov5n_pt: Path, yolov5n_onnx: Path, small_test_set):
    model, _ = load_weights(yolov5n_pt)
    before = copy.deepcopy(model.state_dict())
    in_memory = Detector(backend=TorchBackend.from_model(model, img_size=320), img_size=320, **SETTINGS)
    exported = Detector(yolov5n_onnx, img_size=320, **SETTINGS)
    a = evaluate(in_memory, small_test_set, progress=False)
    b = evaluate(exported, small_test_set, progress=False)
    assert a.means["ap50"] == pytest.approx(b.means["ap50"], abs=2e-3)
    assert 0.3 < a.means["ap50"] <= 1.0
    # the model handed in is untouched: not fused, same weights, still has its BatchNorms
    assert not model.fused and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_evaluate_never_changes_the_detector(yolov5n_onnx: Path, small_test_set):
    det = Detector(yolov5n_onnx, img_size=320, classes=["person"], **SETTINGS)
    classes_before = list(det.classes)
    detections = detect_dataset(det, small_test_set, progress=False)
    assert det.classes == classes_before  # the VOC class map was passed per call, not set on the detector
    # every VOC class can be detected, not only the detector's own 'person' filter
    found = {int(c) for arr in detections.values() for c in arr[:, 5]}
    assert len(found) > 1 and found <= set(range(len(VOC_CLASSES)))
    result = score_detections(detections, small_test_set.annotations, small_test_set.class_names)
    assert result.num_images == len(small_test_set.ids)


def test_explicit_class_ids_select_what_each_dataset_class_is(yolov5n_onnx: Path, small_test_set):
    det = Detector(yolov5n_onnx, img_size=320, **SETTINGS)
    coco = class_map(det.names, VOC_CLASSES)
    swapped = list(coco)
    person, car = VOC_CLASSES.index("person"), VOC_CLASSES.index("car")
    swapped[person], swapped[car] = coco[car], coco[person]
    right = detect_dataset(det, small_test_set, class_ids=coco, progress=False)
    wrong = detect_dataset(det, small_test_set, class_ids=swapped, progress=False)
    n_person = sum(int((arr[:, 5] == person).sum()) for arr in right.values())
    assert n_person == sum(int((arr[:, 5] == car).sum()) for arr in wrong.values()) > 0


def test_timing_is_scoped(yolov5n_onnx: Path, images_dir: Path):
    det = Detector(yolov5n_onnx)
    with det.timing() as times:
        det.predict(images_dir / "bus.jpg")
        with pytest.raises(RuntimeError, match="nested"), det.timing():
            pass
    det.predict(images_dir / "bus.jpg")  # outside the block nothing is recorded
    summary = times.summary()
    assert {s: v["calls"] for s, v in summary.items()} == {"decode": 1, "preprocess": 1, "inference": 1,
                                                            "postprocess": 1}


def test_torch_backend_runs_any_stride_multiple(yolov5n_pt: Path):
    backend = TorchBackend.from_weights(yolov5n_pt, img_size=320)
    assert backend.meta.dynamic and backend.meta.img_size == (320, 320)
    heads = backend.run(np.zeros((1, 3, 64, 96), np.float32))
    assert [h.shape[2:4] for h in heads] == [(8, 12), (4, 6), (2, 3)]


def test_unreadable_images_are_skipped_and_left_out_of_the_score(yolov5n_onnx: Path, small_test_set, tmp_path: Path):
    """One skip policy: an undecodable image is reported and scored as absent (ground truth included), or
    stops a strict run."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    bad_id = small_test_set.ids[1]
    ds = copy.copy(small_test_set)
    ds.image_path = lambda i: broken if i == bad_id else small_test_set.image_path(i)
    det = Detector(yolov5n_onnx, img_size=320, **SETTINGS)
    skipped: list[tuple[str, str]] = []
    result = evaluate(det, ds, progress=False, on_skip=lambda i, reason: skipped.append((i, reason)))
    assert [i for i, _ in skipped] == [bad_id] and "cannot decode image" in skipped[0][1]
    assert result.num_images == len(ds.ids) - 1
    with pytest.warns(UserWarning, match=f"skipped {bad_id}"):
        assert bad_id not in detect_dataset(det, ds, progress=False)
    with pytest.raises(AscendSlimError, match="strict mode"):
        evaluate(det, ds, progress=False, strict=True)
