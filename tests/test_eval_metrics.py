"""VOC devkit matching and AP: hand-worked cases, and a cross-check against pycocotools' COCOeval."""

from __future__ import annotations

import numpy as np
import pytest

from ascend_slim.data.voc import Annotation
from ascend_slim.evaluation.metrics import (
    IOU_THRESHOLDS,
    VOC07_RECALL_POINTS,
    all_point_ap,
    interpolated_ap,
    iou_plus1,
    score_detections,
)

NAMES = ("a", "b", "c")


def ann(boxes, labels, difficult=None, size=(200, 200)) -> Annotation:
    """Ground truth with XML (1-based) boxes."""
    n = len(labels)
    return Annotation(
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        difficult=np.asarray(difficult if difficult is not None else [False] * n, dtype=bool),
        width=size[0],
        height=size[1],
    )


def det(*rows) -> np.ndarray:
    """Detections ``[x1, y1, x2, y2, score, class]`` in 0-based pixels."""
    return np.asarray(rows, dtype=np.float64).reshape(-1, 6)


def test_iou_uses_inclusive_pixels():
    a = np.array([0.0, 0.0, 9.0, 9.0])  # 10x10 pixels
    assert iou_plus1(a, a) == 1.0
    # shifted by 5: 5x10 shared of 100 + 100 - 50 = 150
    assert iou_plus1(a, np.array([5.0, 0.0, 14.0, 9.0])) == pytest.approx(1 / 3)
    # touching at one pixel column: 1x10 shared, union 190
    assert iou_plus1(a, np.array([9.0, 0.0, 18.0, 9.0])) == pytest.approx(10 / 190)
    assert iou_plus1(a, np.array([10.0, 0.0, 19.0, 9.0])) == 0.0
    # a degenerate box (x2 < x1 - 1) overlaps nothing instead of producing a negative area
    assert iou_plus1(a, np.array([5.0, 0.0, 2.0, 9.0])) == 0.0


def test_duplicates_misses_and_both_ap_methods():
    # Class "a", npos = 4: image A has g1, g2; image B has g3, g4 (g2, g4 never found).
    annotations = {
        "A": ann([[1, 1, 10, 10], [21, 21, 30, 30]], [0, 0]),
        "B": ann([[1, 1, 10, 10], [61, 61, 70, 70]], [0, 0]),
    }
    detections = {
        "A": det([0, 0, 9, 9, 0.9, 0], [0, 0, 9, 9, 0.8, 0]),  # TP on g1, then a duplicate of g1 -> FP
        "B": det([50, 50, 59, 59, 0.7, 0], [0, 0, 9, 9, 0.6, 0]),  # no overlap -> FP; g3 -> TP
    }
    res = score_detections(detections, annotations, NAMES)
    # score order TP FP FP TP: recall 1/4 1/4 1/4 2/4, precision 1 1/2 1/3 1/2
    recall, precision = res.curves[0]
    np.testing.assert_allclose(recall, [0.25, 0.25, 0.25, 0.5])
    np.testing.assert_allclose(precision, [1, 1 / 2, 1 / 3, 1 / 2])
    # all-point: envelope 1 on (0, 1/4], 1/2 on (1/4, 1/2], 0 beyond -> 1/4 + 1/8
    assert res.ap50[0] == pytest.approx(0.375)
    # 11-point: t = 0, .1, .2 -> 1; t = .3, .4, .5 -> 1/2; t >= .6 -> 0  => 4.5 / 11
    assert res.ap50_voc07[0] == pytest.approx(4.5 / 11)
    assert res.npos[0] == 4 and res.ndet[0] == 4
    # exact boxes: the same at every IoU threshold
    np.testing.assert_allclose(res.ap[0], 0.375)


def test_ties_keep_input_order_within_and_across_images():
    annotations = {"A": ann([[1, 1, 10, 10]], [0])}
    tp, fp = [0, 0, 9, 9, 0.5, 0], [100, 100, 109, 109, 0.5, 0]
    # TP first: recall 1 1, precision 1 1/2 -> AP 1; FP first: recall 0 1, precision 0 1/2 -> AP 1/2
    assert score_detections({"A": det(tp, fp)}, annotations, NAMES).ap50[0] == pytest.approx(1.0)
    fp_first = score_detections({"A": det(fp, tp)}, annotations, NAMES)
    assert fp_first.ap50[0] == pytest.approx(0.5)
    assert fp_first.ap50_voc07[0] == pytest.approx(0.5)  # max precision at recall >= t is 1/2 for every t
    # across images the annotation order breaks the tie: image "Z" (an FP) before "A" -> 1/2, after -> 1
    two = {"A": det(tp), "Z": det(fp)}
    z_first = {"Z": ann([[150, 150, 160, 160]], [1]), "A": annotations["A"]}
    z_last = {"A": annotations["A"], "Z": z_first["Z"]}
    assert score_detections(two, z_first, NAMES).ap50[0] == pytest.approx(0.5)
    assert score_detections(two, z_last, NAMES).ap50[0] == pytest.approx(1.0)


def test_difficult_objects_count_neither_way():
    # g1 normal, g2 difficult: npos = 1
    annotations = {"A": ann([[1, 1, 10, 10], [31, 31, 40, 40]], [0, 0], [False, True])}
    detections = {
        "A": det(
            [30, 30, 39, 39, 0.9, 0],  # matches difficult g2 -> ignored
            [30, 30, 39, 39, 0.8, 0],  # matches g2 again -> still ignored (not a duplicate FP)
            [0, 0, 9, 9, 0.7, 0],  # TP
            [100, 100, 109, 109, 0.6, 0],  # FP
        )
    }
    res = score_detections(detections, annotations, NAMES)
    assert res.npos[0] == 1
    # ignored detections are dropped: TP FP -> recall 1 1, precision 1 1/2 -> AP 1 by both methods
    np.testing.assert_allclose(res.curves[0][1], [1.0, 0.5])
    assert res.ap50[0] == pytest.approx(1.0)
    assert res.ap50_voc07[0] == pytest.approx(1.0)


def test_best_overlap_decides_even_when_it_is_difficult():
    # g2 (difficult) is g1 shifted 2 px right; the detection sits exactly on g2 (IoU 1) and has IoU
    # 80 / 120 = 0.667 with g1. The devkit takes the best overlap, g2, so the detection is ignored and g1 is
    # never found: AP 0 (COCO's matcher would give it to g1 instead).
    annotations = {"A": ann([[1, 1, 10, 10], [3, 1, 12, 10]], [0, 0], [False, True])}
    res = score_detections({"A": det([2, 0, 11, 9, 0.9, 0])}, annotations, NAMES)
    assert res.npos[0] == 1
    assert len(res.curves[0][0]) == 0
    assert res.ap50[0] == 0.0 and res.ap50_voc07[0] == 0.0


def test_iou_must_exceed_threshold():
    # GT 20x10 pixels. Det of 10x10 inside: IoU 100/200 = 0.5 exactly -> not a match at 0.5 (IoU > t).
    annotations = {"A": ann([[1, 1, 20, 10]], [0])}
    assert score_detections({"A": det([0, 0, 9, 9, 0.9, 0])}, annotations, NAMES).ap50[0] == 0.0
    # 11x10 inside: IoU 110/200 = 0.55 -> a match at 0.5, not at the sample's 0.55
    res = score_detections({"A": det([0, 0, 10, 9, 0.9, 0])}, annotations, NAMES)
    assert res.ap50[0] == 1.0 and res.ap55_sample[0] == 0.0


def test_iou_averaged_ap():
    # det shifted by one pixel: IoU 90/110 = 0.818 -> a hit at 0.50 ... 0.80 (7 thresholds), a miss at
    # 0.85, 0.90, 0.95 -> AP 1 at 7 thresholds, 0 at 3 -> AP@0.5:0.95 = 0.7
    annotations = {"A": ann([[1, 1, 10, 10]], [0])}
    res = score_detections({"A": det([1, 0, 10, 9, 0.9, 0])}, annotations, NAMES)
    np.testing.assert_array_equal(res.ap[0], [1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    assert res.ap50_95[0] == pytest.approx(0.7)


def test_predictions_are_shifted_to_one_based_pixels():
    # the 0-based prediction [0, 0, 9, 9] is the XML box [1, 1, 10, 10]; unshifted it would have IoU 0.68 and
    # miss at 0.7
    annotations = {"A": ann([[1, 1, 10, 10]], [0])}
    res = score_detections({"A": det([0, 0, 9, 9, 0.9, 0])}, annotations, NAMES)
    np.testing.assert_array_equal(res.ap[0], np.ones(len(IOU_THRESHOLDS)))


def test_empty_classes_images_without_objects_and_class_without_gt():
    annotations = {
        "A": ann([[1, 1, 10, 10]], [0]),
        "B": ann([[1, 1, 10, 10]], [1]),  # class b: GT but no detection -> AP 0
        "C": ann([], []),  # no objects at all
    }
    detections = {
        "C": det([0, 0, 9, 9, 0.95, 0], [0, 0, 9, 9, 0.5, 2]),  # FP for a on an empty image; c has no GT
        "A": det([0, 0, 9, 9, 0.9, 0]),
        "unlisted": det([0, 0, 9, 9, 0.9, 0]),  # not in the annotations -> ignored, counted
    }
    res = score_detections(detections, annotations, NAMES)
    # class a: FP then TP -> recall 0 1, precision 0 1/2 -> 1/2 by both methods
    assert res.ap50[0] == pytest.approx(0.5) and res.ap50_voc07[0] == pytest.approx(0.5)
    assert res.ap50[1] == 0.0 and res.ap50_voc07[1] == 0.0
    assert np.isnan(res.ap50[2]) and np.isnan(res.ap50_95[2]) and res.ndet[2] == 1
    assert res.classes_without_gt == ["c"]
    # means over a and b only
    assert res.mean("ap50") == pytest.approx(0.25)
    assert res.mean("ap50_voc07") == pytest.approx(0.25)
    assert res.means == pytest.approx({m: res.mean(m) for m in ("ap50_voc07", "ap50", "ap55_sample", "ap50_95")})
    assert res.num_images == 3 and res.ignored_detections == 1
    d = res.to_dict()
    assert d["classes"][2]["ap50"] is None and d["metrics"]["ap50"]["mean"] == pytest.approx(0.25)
    assert d["num_classes_evaluated"] == 2 and d["num_objects"] == 2 and d["num_detections"] == 3


def test_no_detections_at_all():
    res = score_detections({}, {"A": ann([[1, 1, 10, 10]], [0])}, NAMES)
    assert res.ap50[0] == 0.0 and res.ap50_voc07[0] == 0.0 and res.mean("ap50_95") == 0.0


def test_bad_detection_arrays_are_rejected():
    annotations = {"A": ann([[1, 1, 10, 10]], [0])}
    with pytest.raises(ValueError, match="shape"):
        score_detections({"A": np.zeros((2, 5))}, annotations, NAMES)
    with pytest.raises(ValueError, match="class ids"):
        score_detections({"A": det([0, 0, 9, 9, 0.9, 3])}, annotations, NAMES)
    with pytest.raises(ValueError, match="NaN"):
        score_detections({"A": det([0, 0, 9, 9, np.nan, 0])}, annotations, NAMES)


def test_ap_functions_match_their_definitions_on_random_curves():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        tp = rng.random(n) < 0.5
        npos = int(tp.sum() + rng.integers(0, 5)) or 1
        recall = np.cumsum(tp) / npos
        precision = np.cumsum(tp) / np.arange(1, n + 1)
        # 11-point by its definition (devkit loop)
        expected07 = np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in VOC07_RECALL_POINTS])
        assert interpolated_ap(recall, precision) == pytest.approx(expected07, abs=1e-12)
        # all-point: integral of max precision at recall >= r, evaluated on a fine midpoint grid
        grid = (np.arange(200_000) + 0.5) / 200_000
        envelope = [precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in grid[::1000]]
        assert all_point_ap(recall, precision) == pytest.approx(np.mean(envelope), abs=0.02)


# --- cross-check with pycocotools -------------------------------------------------------------------------


def _random_scene(seed: int):
    """Images with disjoint GT boxes (one per 50 px cell) and jittered, duplicate and random detections.

    Disjoint GT and continuous coordinates make the devkit's and COCO's matchers agree: a detection can have
    IoU > 0.5 with at most one of two disjoint boxes, and IoU never equals a threshold exactly.
    """
    rng = np.random.default_rng(seed)
    annotations, detections = {}, {}
    for i in range(40):
        boxes, labels = [], []
        for cx in range(4):
            for cy in range(4):
                if rng.random() < 0.3:
                    x1, y1 = cx * 50 + 1 + rng.uniform(0, 15), cy * 50 + 1 + rng.uniform(0, 15)
                    boxes.append([x1, y1, x1 + rng.uniform(10, 33), y1 + rng.uniform(10, 33)])
                    labels.append(int(rng.integers(0, 3)))
        gt = ann(boxes, labels)
        rows = []
        for box, label in zip(gt.boxes, gt.labels):
            for _ in range(int(rng.integers(0, 4))):  # 0..3 detections per object: misses and duplicates
                jitter = rng.normal(0, 2.5, 4)
                rows.append([*(box - 1 + jitter), 0, label if rng.random() < 0.9 else rng.integers(0, 3)])
        for _ in range(int(rng.integers(0, 6))):  # background false positives
            x1, y1 = rng.uniform(0, 170, 2)
            rows.append([x1, y1, x1 + rng.uniform(5, 30), y1 + rng.uniform(5, 30), 0, rng.integers(0, 3)])
        d = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        d[:, [0, 2]] = np.sort(d[:, [0, 2]], axis=1)
        d[:, [1, 3]] = np.sort(d[:, [1, 3]], axis=1)
        annotations[f"{i:06d}"] = gt
        detections[f"{i:06d}"] = d
    total = sum(len(d) for d in detections.values())
    scores = rng.permutation(total) / total + 1e-3  # unique: no tie-breaking differences
    offset = 0
    for d in detections.values():
        d[:, 4] = scores[offset : offset + len(d)]
        offset += len(d)
    return annotations, detections


def _coco_eval(annotations, detections, rec_thrs):
    """COCOeval on the same data. Boxes become [x, y, x2 - x + 1, y2 - y + 1] (1-based), so COCO's
    continuous IoU equals the devkit's +1-pixel IoU; one area range, no per-image detection cap."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, gts, dts = [], [], []
    for n, (image_id, a) in enumerate(annotations.items(), 1):
        images.append({"id": n, "width": a.width, "height": a.height})
        for box, label in zip(a.boxes, a.labels):
            w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
            gts.append({"id": len(gts) + 1, "image_id": n, "category_id": int(label) + 1,
                        "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
        for x1, y1, x2, y2, score, label in detections[image_id]:
            dts.append({"image_id": n, "category_id": int(label) + 1, "score": score,
                        "bbox": [x1 + 1, y1 + 1, x2 - x1 + 1, y2 - y1 + 1]})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": gts, "categories": [{"id": c + 1} for c in range(len(NAMES))]}
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(dts), "bbox")
    ev.params.iouThrs = np.array(IOU_THRESHOLDS)
    ev.params.recThrs = rec_thrs
    ev.params.maxDets = [100_000]
    ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
    ev.evaluate()
    ev.accumulate()
    return ev.eval  # precision [T, R, K, A=1, M=1], recall [T, K, A, M]


@pytest.fixture(scope="module")
def scene_and_coco():
    import contextlib
    import io

    annotations, detections = _random_scene(7)
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints progress
        coarse = _coco_eval(annotations, detections, VOC07_RECALL_POINTS)
        fine = _coco_eval(annotations, detections, np.linspace(0, 1, 10001))
    return score_detections(detections, annotations, NAMES), coarse, fine


def test_eleven_point_ap_equals_cocoeval_with_eleven_recall_points(scene_and_coco):
    # COCO's interpolated precision at recall r is the maximum precision at recall >= r -- the VOC07
    # definition -- so with recThrs = the 11 VOC07 points, COCO's mean precision is the 11-point AP exactly.
    res, coarse, _ = scene_and_coco
    assert (res.npos > 5).all()
    coco07 = coarse["precision"][0, :, :, 0, 0].mean(axis=0)
    np.testing.assert_allclose(res.ap50_voc07, coco07, atol=1e-12)


def test_final_recall_equals_cocoeval(scene_and_coco):
    res, coarse, _ = scene_and_coco
    ours = np.array([curve[0][-1] for curve in res.curves])
    np.testing.assert_allclose(ours, coarse["recall"][0, :, 0, 0], atol=1e-12)


def test_all_point_and_iou_averaged_ap_match_cocoeval_on_a_fine_recall_grid(scene_and_coco):
    # The all-point AP is the integral of that same precision envelope; COCO's mean over 10,001 equally
    # spaced recall points is a Riemann sum of it, off by at most about 2/10,000 for a non-increasing
    # envelope in [0, 1]. (COCO's default 101 points would be off by up to ~0.02.)
    res, _, fine = scene_and_coco
    coco = fine["precision"][:, :, :, 0, 0].mean(axis=1).T  # (K, T)
    np.testing.assert_allclose(res.ap, coco, atol=3e-4)
    np.testing.assert_allclose(res.ap50_95, coco.mean(axis=1), atol=3e-4)
    assert abs(res.mean("ap50_95") - coco.mean()) < 3e-4
