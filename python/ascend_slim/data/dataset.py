"""The training/validation data set: decoded, augmented images and their targets as torch tensors.

Each item is ``(image, targets, path, (h0, w0))``: a contiguous ``uint8 [3, S, S]`` RGB image (the trainer
converts to float and divides by 255 on its device), ``float32 [n, 6]`` targets ``[0, class, cx, cy, w, h]``
normalised to the output image (:meth:`DetectionDataset.collate` writes the image's index in the batch into
column 0), the image path and the original size.

* ``augment=False`` (validation): the square letterbox of ``eval`` (``ascend_slim.core``, bilinear, padded
  with 114), no randomness.
* ``augment=True`` (training), as YOLOv5 v7.0 ``LoadImagesAndLabels``: images resized so the longer side is
  ``S``; with probability ``mosaic`` a 4-image mosaic warped by ``random_perspective`` down to ``S x S``
  (then, with probability ``mixup``, blended with a second mosaic), otherwise the image letterboxed to ``S``
  and warped; then HSV gains and the flips. See :mod:`ascend_slim.data.augment`.

Randomness: item ``i`` of epoch ``e`` draws from ``numpy.random.default_rng((seed, e, i))`` only, so the
output depends on nothing else (not the worker, not the order of requests): a resumed run reproduces the
batches of an uninterrupted one. The epoch lives in shared memory, so :meth:`set_epoch` reaches persistent
loader workers too (call it before iterating the loader for that epoch;
:func:`ascend_slim.data.loader.set_epoch` sets the sampler's epoch as well).

``cache="ram"``: every image is decoded once at construction (on a few threads, with a progress bar) and
kept in memory: resized for training (long side ``S``, INTER_LINEAR as YOLOv5 uses while augmenting), or the
finished letterboxed tensor for validation, so a validation item costs nothing but a copy.
``cache_bytes`` tells the memory taken. Loader workers share the cache (fork) rather than copying it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from tqdm import tqdm

from .. import core
from ..errors import AscendSlimError
from ..imageio import read_image
from . import augment as aug
from .samples import SampleSet

Item = tuple[torch.Tensor, torch.Tensor, str, tuple[int, int]]
Batch = tuple[torch.Tensor, torch.Tensor, list[str], list[tuple[int, int]]]
_Source = tuple[np.ndarray, np.ndarray, tuple[int, int]]  # image as stored, normalised labels, (h0, w0)


class DetectionDataset(torch.utils.data.Dataset):
    """Images and YOLO targets of a :class:`SampleSet`, letterboxed (``augment=False``) or augmented.

    ``hyp``: YOLOv5 hyp keys (``hsv_h hsv_s hsv_v degrees translate scale shear perspective flipud fliplr
    mosaic mixup``; others are ignored), defaults from hyp.scratch-low. ``img_size`` must be a multiple of
    ``stride``. ``cache``: ``None`` or ``"ram"``.
    """

    def __init__(self, samples: SampleSet, img_size: int = 640, augment: bool = False,
                 hyp: Mapping[str, float] | None = None, cache: str | None = None, stride: int = 32,
                 seed: int = 0) -> None:
        if img_size <= 0 or img_size % stride:
            raise AscendSlimError(f"image size {img_size} is not a positive multiple of the model stride {stride}")
        if cache not in (None, "ram"):
            raise AscendSlimError(f"cache {cache!r} is not supported: use 'ram' or no cache")
        if not samples.samples:
            raise AscendSlimError("the data set has no images")
        self.samples = samples
        self.img_size = img_size
        self.augment = augment
        self.hyp = aug.augment_hyp(hyp)
        self.stride = stride
        self.seed = seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._cache: list[_Source] | None = None
        self.cache_bytes = 0
        if cache == "ram":
            self._cache = self._fill_cache()

    def __len__(self) -> int:
        return len(self.samples.samples)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations the next items draw (shared with loader workers)."""
        self._epoch.fill_(int(epoch))

    def _decode(self, index: int) -> _Source:
        """Read one image into the form the cache keeps (see the module docstring)."""
        sample = self.samples.samples[index]
        img = read_image(sample.image)
        h0, w0 = img.shape[:2]
        if self.augment:
            return aug.resize_long_side(img, self.img_size), sample.labels, (h0, w0)
        chw, ratios, pads = core.preprocess(img, self.img_size, color=aug.PAD_VALUE, dtype=np.uint8)
        r, (left, top) = float(ratios[0]), pads[0]
        boxes = aug.xywhn_to_xyxy(sample.labels, w0 * r, h0 * r, left, top)
        return chw[0], aug.xyxy_to_xywhn(boxes, self.img_size, self.img_size), (h0, w0)

    def _fill_cache(self) -> list[_Source]:
        workers = min(8, os.cpu_count() or 1)
        cache: list[_Source] = []
        with ThreadPoolExecutor(workers) as pool, tqdm(total=len(self), desc="caching images", unit="img",
                                                        disable=None) as bar:
            for source in pool.map(self._decode, range(len(self))):
                source[0].flags.writeable = False  # augmentations read the cached images, never write them
                cache.append(source)
                self.cache_bytes += source[0].nbytes
                bar.set_postfix_str(f"{self.cache_bytes / 1e6:.0f} MB", refresh=False)
                bar.update()
        return cache

    def _load(self, index: int) -> _Source:
        return self._cache[index] if self._cache is not None else self._decode(index)

    def _original_shape(self, index: int) -> tuple[int, int]:
        """``(h0, w0)``: from the cache, else as recorded when the samples were loaded, else decoded."""
        if self._cache is not None:
            return self._cache[index][2]
        image = self.samples.samples[index].image
        shape = self.samples.shapes.get(image)
        return shape if shape is not None else read_image(image).shape[:2]

    def _mosaic(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A warped 4-image mosaic of ``index`` and three random images, ``S x S``, pixel xyxy labels."""
        order = rng.permutation([index, *rng.integers(len(self), size=3)])
        images, labels, _ = zip(*(self._load(int(i)) for i in order))
        canvas, boxes = aug.mosaic(images, labels, self.img_size, rng)
        return self._warp(canvas, boxes, rng, border=-self.img_size // 2)

    def _warp(self, img: np.ndarray, boxes: np.ndarray, rng: np.random.Generator,
              border: int) -> tuple[np.ndarray, np.ndarray]:
        h = self.hyp
        return aug.random_perspective(img, boxes, rng, degrees=h["degrees"], translate=h["translate"],
                                      scale=h["scale"], shear=h["shear"], perspective=h["perspective"],
                                      border=(border, border))

    def _augmented(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The BGR ``S x S`` training image of ``index`` and its normalised labels for the current epoch."""
        rng = np.random.default_rng((self.seed, self.epoch, index))
        h = self.hyp
        if rng.random() < h["mosaic"]:
            img, boxes = self._mosaic(index, rng)
            if rng.random() < h["mixup"]:
                img, boxes = aug.mixup(img, boxes, *self._mosaic(int(rng.integers(len(self))), rng), rng)
        else:
            resized, labels, _ = self._load(index)
            img, r, (left, top) = core.letterbox(resized, self.img_size, color=aug.PAD_VALUE)
            boxes = aug.xywhn_to_xyxy(labels, resized.shape[1] * r, resized.shape[0] * r, left, top)
            img, boxes = self._warp(img, boxes, rng, border=0)
        labels = aug.xyxy_to_xywhn(boxes, img.shape[1], img.shape[0])
        img = aug.augment_hsv(img, rng, h["hsv_h"], h["hsv_s"], h["hsv_v"])
        if rng.random() < h["flipud"]:
            img, labels = aug.flipud(img, labels)
        if rng.random() < h["fliplr"]:
            img, labels = aug.fliplr(img, labels)
        return img, labels

    def __getitem__(self, index: int) -> Item:
        if self.augment:
            img, labels = self._augmented(index)
            chw = core.preprocess(img, self.img_size, dtype=np.uint8)[0][0]  # BGR HWC -> RGB CHW, no resize
            shape0 = self._original_shape(index)
        else:
            chw, labels, shape0 = self._load(index)
            chw = chw.copy()  # the caller may write into it; the cache keeps its own
        targets = np.zeros((len(labels), 6), dtype=np.float32)
        targets[:, 1:] = labels
        return torch.from_numpy(chw), torch.from_numpy(targets), str(self.samples.samples[index].image), shape0

    @staticmethod
    def collate(batch: Sequence[Item]) -> Batch:
        """Stack images to ``uint8 [B, 3, S, S]`` and concatenate targets to ``[M, 6]`` with column 0 the
        image's index in the batch.

        The copies go through numpy: ``torch.stack``/``torch.cat`` of these sizes run on OpenMP threads, which
        on a busy 2-core machine took 100x longer (250 ms instead of 2 ms for 16 images at 320).
        """
        images, targets, paths, shapes = zip(*batch)
        joined = np.concatenate([t.numpy() for t in targets])
        joined[:, 0] = np.repeat(np.arange(len(targets)), [len(t) for t in targets])
        return (torch.from_numpy(np.stack([image.numpy() for image in images])), torch.from_numpy(joined),
                list(paths), list(shapes))

