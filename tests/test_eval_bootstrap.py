"""Paired bootstrap of the mAP@0.5 VOC07 difference: exact full-sample agreement with ``score_detections`` on
real detections, resamples equal to scoring the resampled image multiset, and interval sanity."""

from __future__ import annotations

import numpy as np
import pytest

from ascend_slim.data.voc import VOCDataset, load_voc
from ascend_slim.detector import Detector
from ascend_slim.evaluation import detect_dataset, score_detections
from ascend_slim.evaluation.bootstrap import DifferenceInterval, MatchTable, PairedBootstrap

REFERENCE = dict(conf_thres=0.001, iou_thres=0.6, max_det=300, multi_label=True, rect=False)


@pytest.fixture(scope="module")
def real(voc_root, yolov5n_onnx):
    """Official yolov5n detections on 20 trainval images at 256, with their annotations."""
    full = load_voc(voc_root, split="trainval")
    ids = full.ids[:20]
    dataset = VOCDataset(full.year_dir, "trainval", full.class_names, ids, {i: full.annotations[i] for i in ids})
    detections = detect_dataset(Detector(yolov5n_onnx, img_size=256, **REFERENCE), dataset, progress=False)
    return detections, dataset.annotations, dataset.class_names


def test_full_sample_equals_score_detections_exactly(real):
    detections, annotations, names = real
    result = score_detections(detections, annotations, names)
    table = MatchTable.from_detections(detections, annotations, names)
    assert table.map50() == result.mean("ap50_voc07")  # bit for bit
    np.testing.assert_array_equal(table.class_ap50(np.ones((1, len(annotations))))[0], result.ap50_voc07)
    assert 0.3 < table.map50() < 0.9


def test_a_resample_equals_scoring_the_resampled_images(real):
    detections, annotations, names = real
    table = MatchTable.from_detections(detections, annotations, names)
    weights = np.random.default_rng(3).multinomial(len(annotations), np.full(len(annotations), 0.05), size=3)
    fast = table.map50(weights)
    for row, expected in zip(weights, fast):
        copies = [(f"{i}#{k}", i) for i, w in zip(annotations, row) for k in range(w)]
        slow = score_detections({c: detections[i] for c, i in copies if i in detections},
                                {c: annotations[i] for c, i in copies}, names)
        assert expected == pytest.approx(slow.mean("ap50_voc07"), abs=1e-12)
    assert len(set(np.round(fast, 9))) == 3  # the resamples differ


def test_identical_models_differ_by_exactly_zero(real):
    table = MatchTable.from_detections(*real)
    interval = PairedBootstrap(table, resamples=200, seed=0).compare(table)
    assert interval.difference == 0.0 and set(interval.percentiles) == {0.0}


def test_a_degraded_model_has_a_negative_interval(real):
    detections, annotations, names = real
    reference = MatchTable.from_detections(detections, annotations, names)
    # drop each image's highest-scoring detection: mostly true positives
    degraded = {i: d[np.argsort(-d[:, 4])[1:]] for i, d in detections.items()}
    worse = MatchTable.from_detections(degraded, annotations, names)
    interval = PairedBootstrap(reference, resamples=500, seed=0).compare(worse)
    assert interval.difference == pytest.approx(worse.map50() - reference.map50())
    low, high = interval.interval(0.9)
    assert low <= interval.lower_bound(0.9) <= interval.difference <= high < 0
    assert interval.lower_bound(0.95) <= interval.lower_bound(0.9)


def test_records_round_trip_and_pairing_is_checked(real, tmp_path):
    detections, annotations, names = real
    table = MatchTable.from_detections(detections, annotations, names)
    loaded = MatchTable.load(table.save(tmp_path / "records.npz"))
    weights = np.random.default_rng(0).multinomial(20, np.full(20, 0.05), size=5)
    np.testing.assert_array_equal(loaded.map50(weights), table.map50(weights))
    fewer = {i: annotations[i] for i in list(annotations)[:10]}
    other = MatchTable.from_detections(detections, fewer, names)
    with pytest.raises(ValueError, match="same images"):
        PairedBootstrap(table, resamples=10).compare(other)


def test_bias_correction_shifts_the_bounds_toward_the_full_sample_estimate():
    spread = tuple(np.linspace(-0.02, 0.02, 101))  # resampled differences, median 0
    unbiased = DifferenceInterval(0.0, spread, 1000, below=0.5)
    assert unbiased.lower_bound(0.9) == pytest.approx(unbiased.quantile(0.1))  # plain percentile
    assert unbiased.interval(0.9) == pytest.approx((unbiased.quantile(0.05), unbiased.quantile(0.95)))
    # the full-sample difference sits below most resamples: the resamples are optimistic, the bound drops
    optimistic = DifferenceInterval(-0.005, spread, 1000, below=0.25)
    assert optimistic.lower_bound(0.9) < unbiased.lower_bound(0.9) - 0.003
    assert np.isfinite(DifferenceInterval(0.0, spread, 1000, below=1.0).lower_bound(0.9))
