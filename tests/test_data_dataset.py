"""DetectionDataset and build_loader: validation = eval's letterbox, seeded augmentation, collate, workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ascend_slim import core
from ascend_slim.data.augment import resize_long_side, xywhn_to_xyxy
from ascend_slim.data.dataset import DetectionDataset
from ascend_slim.data.loader import build_loader, set_epoch
from ascend_slim.data.samples import SampleSet, load_samples
from ascend_slim.errors import AscendSlimError
from ascend_slim.imageio import read_image

SIZE = 160
NO_AUGMENT = {"hsv_h": 0, "hsv_s": 0, "hsv_v": 0, "degrees": 0, "translate": 0, "scale": 0, "shear": 0,
              "perspective": 0, "flipud": 0, "fliplr": 0, "mosaic": 0, "mixup": 0}


@pytest.fixture(scope="module")
def few(voc_root: Path) -> SampleSet:
    full = load_samples(voc_root, "trainval")
    return SampleSet(full.samples[:8], full.names, shapes=full.shapes)


def _check_item(item, size=SIZE):
    img, targets, path, (h0, w0) = item
    assert img.dtype == torch.uint8 and img.shape == (3, size, size) and img.is_contiguous()
    assert targets.dtype == torch.float32 and targets.shape[1] == 6 and (targets[:, 0] == 0).all()
    assert (targets[:, 2:] >= 0).all() and (targets[:, 2:] <= 1).all() and (targets[:, 4:] > 0).all()
    assert Path(path).is_file() and h0 > 0 and w0 > 0


def test_validation_equals_the_eval_letterbox(few: SampleSet):
    plain, cached = DetectionDataset(few, SIZE), DetectionDataset(few, SIZE, cache="ram")
    assert cached.cache_bytes == len(few) * 3 * SIZE * SIZE
    for i in (0, 3, 7):
        sample = few.samples[i]
        bgr = read_image(sample.image)
        letterboxed, r, (left, top) = core.letterbox(bgr, SIZE)
        item = plain[i]
        _check_item(item)
        img, targets, path, shape0 = item
        np.testing.assert_array_equal(img.numpy(), letterboxed[..., ::-1].transpose(2, 0, 1))
        assert path == str(sample.image) and shape0 == bgr.shape[:2]
        boxes = xywhn_to_xyxy(sample.labels, bgr.shape[1] * r, bgr.shape[0] * r, left, top)[:, 1:] / SIZE
        got = targets[:, 2:].numpy()
        np.testing.assert_allclose(np.c_[got[:, :2] - got[:, 2:] / 2, got[:, :2] + got[:, 2:] / 2], boxes,
                                   atol=1e-5)
        np.testing.assert_array_equal(targets[:, 1].numpy(), sample.labels[:, 0])
        for a, b in zip(item, cached[i]):
            assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_augmentation_is_reproducible_per_seed_epoch_and_index(few: SampleSet):
    a = DetectionDataset(few, SIZE, augment=True, seed=3)
    b = DetectionDataset(few, SIZE, augment=True, seed=3, cache="ram")  # the cache changes nothing
    items = [a[i] for i in range(len(few))]
    for i in reversed(range(len(few))):  # order of requests does not matter either
        _check_item(items[i])
        assert torch.equal(items[i][0], b[i][0]) and torch.equal(items[i][1], b[i][1])
    a.set_epoch(1)
    assert a.epoch == 1 and not torch.equal(a[0][0], items[0][0])
    a.set_epoch(0)
    assert torch.equal(a[0][0], items[0][0])
    assert not torch.equal(DetectionDataset(few, SIZE, augment=True, seed=4)[0][0], items[0][0])


def test_augment_with_everything_off_is_the_letterbox_of_the_resized_image(few: SampleSet):
    ds = DetectionDataset(few, SIZE, augment=True, hyp=NO_AUGMENT)
    for i in (0, 5):
        bgr = read_image(few.samples[i].image)
        letterboxed, _, _ = core.letterbox(resize_long_side(bgr, SIZE), SIZE)
        img, targets, _, _ = ds[i]
        np.testing.assert_array_equal(img.numpy(), letterboxed[..., ::-1].transpose(2, 0, 1))
        np.testing.assert_allclose(targets, DetectionDataset(few, SIZE)[i][1], atol=2 / SIZE)  # other resize


def test_mosaic_items_have_objects_from_several_images(few: SampleSet):
    ds = DetectionDataset(few, SIZE, augment=True, hyp={"mosaic": 1.0, "mixup": 1.0})
    counts = [len(ds[i][1]) for i in range(len(few))]
    assert max(counts) > max(len(s.labels) for s in few.samples)  # mosaic + mixup: up to 8 images' objects


def test_collate(few: SampleSet):
    ds = DetectionDataset(few, SIZE, augment=True)
    images, targets, paths, shapes = DetectionDataset.collate([ds[i] for i in range(4)])
    assert images.shape == (4, 3, SIZE, SIZE) and images.dtype == torch.uint8
    counts = [len(ds[i][1]) for i in range(4)]
    assert targets.shape == (sum(counts), 6)
    np.testing.assert_array_equal(targets[:, 0].numpy(), np.repeat(np.arange(4), counts))
    assert paths == [str(s.image) for s in few.samples[:4]] and len(shapes) == 4


def _epoch(loader) -> list:
    return [(images.clone(), targets.clone(), paths) for images, targets, paths, _ in loader]


def test_loader_order_and_batches_depend_on_seed_and_epoch_only(few: SampleSet):
    ds = DetectionDataset(few, SIZE, augment=True, cache="ram")
    serial, parallel = build_loader(ds, 3, workers=0, seed=1), build_loader(ds, 3, workers=2, seed=1)
    set_epoch(serial, 2)
    first = _epoch(serial)
    set_epoch(parallel, 2)  # reaches the persistent workers through shared memory
    second = _epoch(parallel)
    assert len(first) == len(second)
    for (a, ta, pa), (b, tb, pb) in zip(first, second):
        assert torch.equal(a, b) and torch.equal(ta, tb) and pa == pb
    assert [len(p) for _, _, p in first] == [3, 3, 2]
    assert sorted(p for _, _, paths in first for p in paths) == sorted(str(s.image) for s in few.samples)
    set_epoch(serial, 3)
    assert [p for _, _, p in _epoch(serial)] != [p for _, _, p in first]
    set_epoch(parallel, 3)
    set_epoch(serial, 3)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(_epoch(serial), _epoch(parallel)))
    ordered = build_loader(ds, 4, shuffle=False, drop_last=True)
    assert [p for _, _, p in _epoch(ordered)] == [[str(s.image) for s in few.samples[i:i + 4]] for i in (0, 4)]


def test_bad_settings_are_clear_errors(few: SampleSet):
    with pytest.raises(AscendSlimError, match="multiple of the model stride 32"):
        DetectionDataset(few, 100)
    with pytest.raises(AscendSlimError, match="'disk'"):
        DetectionDataset(few, SIZE, cache="disk")
    with pytest.raises(AscendSlimError, match="mosaic"):
        DetectionDataset(few, SIZE, augment=True, hyp={"mosaic": 2})
    with pytest.raises(AscendSlimError, match="torchrun"):
        build_loader(DetectionDataset(few, SIZE), 2, distributed=True)
