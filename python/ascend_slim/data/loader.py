"""The DataLoader of a :class:`~ascend_slim.data.dataset.DetectionDataset`, single-process or under DDP.

The order of every epoch is a permutation seeded by ``(seed, epoch)`` (PyTorch's ``DistributedSampler``, with
one replica when not distributed) and every item's augmentation by ``(seed, epoch, index)``, so nothing
depends on generator state carried between epochs: a resumed run only needs the epoch number. Per epoch
the trainer calls::

    set_epoch(loader, epoch)   # loader.sampler.set_epoch(epoch) and loader.dataset.set_epoch(epoch)
    for images, targets, paths, shapes in loader: ...

Workers (``workers > 0``) are persistent across epochs and seeded from PyTorch's per-worker seed; memory
is pinned only when CUDA is available.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from ..errors import AscendSlimError
from .dataset import DetectionDataset


def _seed_worker(worker_id: int) -> None:
    """Seed the global generators a third-party transform might use from PyTorch's per-worker seed.

    (The worker leaves OpenCV's thread settings alone: ``cv2.setNumThreads`` in a forked child deadlocks on
    the parent's thread pool.)
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(dataset: DetectionDataset, batch_size: int, workers: int = 0, shuffle: bool = True, seed: int = 0,
                 distributed: bool = False, drop_last: bool = False) -> DataLoader:
    """Batches of ``DetectionDataset.collate``: ``uint8 [B, 3, S, S]`` images, ``[M, 6]`` targets, paths, shapes.

    ``distributed=True`` needs ``torch.distributed`` initialised (``torchrun``): each rank then reads its
    share of every epoch's permutation. ``drop_last`` drops the last incomplete batch.
    """
    if batch_size < 1 or workers < 0:
        raise AscendSlimError(f"batch size {batch_size} and workers {workers}: need batch size >= 1, workers >= 0")
    if distributed:
        if not (dist.is_available() and dist.is_initialized()):
            raise AscendSlimError("distributed data loading needs torch.distributed initialised: launch with torchrun")
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=shuffle, seed=seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=DetectionDataset.collate, pin_memory=torch.cuda.is_available(), drop_last=drop_last,
                      worker_init_fn=_seed_worker if workers else None, generator=generator,
                      persistent_workers=workers > 0)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Select ``epoch``'s order and augmentations; call before iterating the loader for that epoch."""
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
