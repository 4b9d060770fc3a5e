"""det_test_<class>.txt writing and reading, and --from-txt scoring against a port of the devkit's loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ascend_slim.classes import VOC_CLASSES
from ascend_slim.data.voc import load_voc
from ascend_slim.errors import AscendSlimError
from ascend_slim.evaluation.detfiles import read_det_files, round_as_written, write_det_files
from ascend_slim.evaluation.metrics import score_detections


@pytest.fixture(scope="module")
def voc_test(voc_root: Path):
    return load_voc(voc_root, split="test")


def _synthetic_detections(ds, seed: int, per_image: int) -> dict[str, np.ndarray]:
    """Jittered ground-truth copies (some with a wrong class) and background boxes, on a 1/64-pixel grid and
    with unique 6-decimal scores, so that the ``%f`` text format represents every value exactly."""
    rng = np.random.default_rng(seed)
    out = {}
    for image_id in ds.ids:
        a = ds.annotations[image_id]
        pick = rng.integers(0, len(a.labels), per_image)
        box = a.boxes[pick] - 1
        size = np.tile(box[:, 2:] - box[:, :2] + 1, 2)
        box = box + rng.normal(0, 0.12, box.shape) * size
        background = rng.random(per_image) < 0.3
        xy = rng.uniform(0, [a.width, a.height], (per_image, 2))
        box[background] = np.hstack([xy, xy + rng.uniform(10, 120, (per_image, 2))])[background]
        box = np.hstack([np.minimum(box[:, :2], box[:, 2:]), np.maximum(box[:, :2], box[:, 2:])])
        box = np.clip(np.round(box * 64) / 64, 0, [a.width - 1, a.height - 1] * 2)
        cls = np.where(rng.random(per_image) < 0.85, a.labels[pick], rng.integers(0, 20, per_image))
        out[image_id] = np.hstack([box, np.zeros((per_image, 1)), cls[:, None]])
    total = per_image * len(ds.ids)
    scores = (rng.permutation(total) + 1) / 1e6
    for i, d in enumerate(out.values()):
        d[:, 4] = scores[i * per_image : (i + 1) * per_image]
    return out


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


def _devkit_voc_eval(det_file: Path, annotations, class_id: int, ovthresh: float, use_07_metric: bool) -> float:
    """py-faster-rcnn ``voc_eval`` (the code behind the Ascend sample's ``compute_mAP``), ported literally:
    per-detection loop, ``np.bool`` -> ``bool``; plus the 0-based -> 1-based shift the sample leaves out."""
    class_recs, npos = {}, 0
    for image_id, a in annotations.items():
        m = a.labels == class_id
        class_recs[image_id] = {"bbox": a.boxes[m], "difficult": a.difficult[m], "det": [False] * int(m.sum())}
        npos += int((~a.difficult[m]).sum())
    lines = [x.strip().split(" ") for x in det_file.read_text().splitlines()]
    image_ids = [x[0] for x in lines]
    confidence = np.array([float(x[1]) for x in lines])
    BB = np.array([[float(z) for z in x[2:]] for x in lines]).reshape(-1, 4) + 1.0
    sorted_ind = np.argsort(-confidence)
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
            ih = np.maximum(iymax - iymin + 1.0, 0.0)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                   + (BBGT[:, 2] - BBGT[:, 0] + 1.0) * (BBGT[:, 3] - BBGT[:, 1] + 1.0) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.0
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def test_round_trip_and_from_txt_scores_equal_in_memory_scores(tmp_path: Path, voc_test):
    detections = _synthetic_detections(voc_test, seed=3, per_image=12)
    paths = write_det_files(tmp_path, detections, VOC_CLASSES)
    assert [p.name for p in paths] == [f"det_test_{c}.txt" for c in VOC_CLASSES]
    first = paths[0].read_text().splitlines()[0].split(" ")
    assert len(first) == 6 and all(len(v.split(".")[1]) == 6 for v in first[1:])  # %f
    back = read_det_files(tmp_path, VOC_CLASSES)
    assert back.keys() == detections.keys()
    for image_id, d in detections.items():  # same rows; the reader groups them by class
        np.testing.assert_array_equal(_sorted_rows(back[image_id]), _sorted_rows(d))
    in_memory = score_detections(detections, voc_test.annotations, VOC_CLASSES)
    from_txt = score_detections(back, voc_test.annotations, VOC_CLASSES)
    np.testing.assert_array_equal(in_memory.ap, from_txt.ap)
    np.testing.assert_array_equal(in_memory.ap50_voc07, from_txt.ap50_voc07)


def test_float32_detections_scored_in_memory_equal_their_det_files(tmp_path: Path, voc_test):
    # model-like output: float32 scores, many of which tie once written with 6 decimals
    rng = np.random.default_rng(11)
    detections = {}
    for image_id, d in _synthetic_detections(voc_test, seed=4, per_image=40).items():
        d[:, :4] += rng.random((len(d), 4))
        d[:, 4] = rng.random(len(d)) * 1e-3  # 16,680 scores below 0.001: ties after rounding
        detections[image_id] = d.astype(np.float32).astype(np.float64)
    write_det_files(tmp_path, detections, VOC_CLASSES)
    from_txt = score_detections(read_det_files(tmp_path, VOC_CLASSES), voc_test.annotations, VOC_CLASSES)
    rounded = score_detections(round_as_written(detections), voc_test.annotations, VOC_CLASSES)
    np.testing.assert_array_equal(rounded.ap, from_txt.ap)
    np.testing.assert_array_equal(rounded.ap50_voc07, from_txt.ap50_voc07)
    unrounded = score_detections(detections, voc_test.annotations, VOC_CLASSES)
    assert np.abs(unrounded.ap - from_txt.ap).max() > 0  # the ties do change something without rounding


def test_real_annotations_match_the_devkit_loop(tmp_path: Path, voc_test):
    # overlapping objects, difficult objects, duplicates, wrong classes: all rules at once on the real subset
    detections = _synthetic_detections(voc_test, seed=5, per_image=12)
    write_det_files(tmp_path, detections, VOC_CLASSES)
    res = score_detections(read_det_files(tmp_path, VOC_CLASSES), voc_test.annotations, VOC_CLASSES)
    assert 0.2 < res.mean("ap50") < 0.9  # a non-trivial mixture of hits and misses
    for c, name in enumerate(VOC_CLASSES):
        det_file = tmp_path / f"det_test_{name}.txt"
        for ovthresh, ours in ((0.5, res.ap50[c]), (0.55, res.ap55_sample[c])):
            assert ours == pytest.approx(_devkit_voc_eval(det_file, voc_test.annotations, c, ovthresh, False),
                                         abs=1e-12), name
        assert res.ap50_voc07[c] == pytest.approx(
            _devkit_voc_eval(det_file, voc_test.annotations, c, 0.5, True), abs=1e-12), name


def test_files_are_fresh_each_run(tmp_path: Path):
    names = ("cat", "dog")
    (tmp_path / "det_test_cat.txt").write_text("old 0.9 1 1 2 2\n")
    (tmp_path / "det_test_horse.txt").write_text("stale class file\n")
    (tmp_path / "notes.md").write_text("kept")
    write_det_files(tmp_path, {"img1": np.array([[0.5, 1.25, 10, 20, 0.75, 1]])}, names)
    assert (tmp_path / "det_test_cat.txt").read_text() == ""  # one file per class, even if empty
    assert (tmp_path / "det_test_dog.txt").read_text() == "img1 0.750000 0.500000 1.250000 10.000000 20.000000\n"
    assert not (tmp_path / "det_test_horse.txt").exists() and (tmp_path / "notes.md").exists()
    assert not list(tmp_path.glob(".*tmp"))
    write_det_files(tmp_path, {"img2": np.array([[0, 0, 5, 5, 0.5, 1]])}, names)  # not appended
    assert read_det_files(tmp_path, names).keys() == {"img2"}


def test_failed_write_leaves_old_files(tmp_path: Path):
    names = ("cat", "dog")
    write_det_files(tmp_path, {"img1": np.array([[0, 0, 5, 5, 0.5, 0]])}, names)
    before = (tmp_path / "det_test_cat.txt").read_text()
    with pytest.raises(ValueError, match="class id"):
        write_det_files(tmp_path, {"img1": np.array([[0, 0, 5, 5, 0.5, 7]])}, names)
    with pytest.raises(AscendSlimError, match="spaces"):
        write_det_files(tmp_path, {"img 1": np.array([[0, 0, 5, 5, 0.5, 0]])}, names)
    assert (tmp_path / "det_test_cat.txt").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det_test_cat.txt", "det_test_dog.txt"]


def test_reading_coco_named_files_missing_classes_and_errors(tmp_path: Path):
    # a COCO model on the device writes det_test_airplane.txt; classes without any file have no detections
    (tmp_path / "det_test_airplane.txt").write_text("000001 0.500000 1.0 2.0 3.0 4.0\n\n")
    (tmp_path / "det_test_giraffe.txt").write_text("000001 0.500000 1.0 2.0 3.0 4.0\n")  # not a VOC class
    back = read_det_files(tmp_path, VOC_CLASSES)
    np.testing.assert_array_equal(back["000001"], [[1, 2, 3, 4, 0.5, VOC_CLASSES.index("aeroplane")]])
    (tmp_path / "det_test_dog.txt").write_text("000001 0.5 1 2 3\n")
    with pytest.raises(AscendSlimError, match=r"det_test_dog.txt:1: expected"):
        read_det_files(tmp_path, VOC_CLASSES)
    (tmp_path / "det_test_dog.txt").write_text("000001 nan 1 2 3 4\n")
    with pytest.raises(AscendSlimError, match="finite"):
        read_det_files(tmp_path, VOC_CLASSES)
    with pytest.raises(AscendSlimError, match=r"no det_test_<class>\.txt"):
        read_det_files(tmp_path, ("unicorn",))
    with pytest.raises(AscendSlimError, match="not found"):
        read_det_files(tmp_path / "missing", VOC_CLASSES)
