"""Multi-process training through PyTorch's own launcher: ``torchrun --nproc_per_node N -m ascend_slim train ...``.

torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`init_distributed` reads them, picks the
device (``cuda:<LOCAL_RANK>``, or the ``LOCAL_RANK``-th of ``--device 0,1``; the CPU otherwise) and joins the
process group (NCCL on GPUs, Gloo on the CPU). Without those variables it is a single process and nothing
is initialised. Only rank 0 (``is_main``) logs, validates and saves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import AscendSlimError

# Rank 0 validates while the others wait in the next all-reduce: allow a long validation.
PROCESS_GROUP_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class DistContext:
    """Where this process trains: its rank among ``world_size`` processes and its device."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def select_device(spec: str | None, local_rank: int = 0) -> torch.device:
    """``cpu``, ``cuda``/``cuda:N``, ``N`` or ``N,M,...`` (one per local rank); empty: the first GPU, else CPU."""
    text = (spec or "").strip().lower()
    if text == "cpu" or (not text and not torch.cuda.is_available()):
        return torch.device("cpu")
    if text in ("", "cuda"):
        index = local_rank
    elif text.startswith("cuda:") and text[5:].isdigit():
        index = int(text[5:]) + local_rank
    elif all(part.strip().isdigit() for part in text.split(",")):
        ids = [int(part) for part in text.split(",")]
        if local_rank >= len(ids):
            raise AscendSlimError(f"--device {spec} lists {len(ids)} GPU(s) but this is local rank {local_rank}")
        index = ids[local_rank]
    else:
        raise AscendSlimError(f"--device {spec!r} is not cpu, cuda[:N] or a list of GPU ids such as 0,1")
    if not torch.cuda.is_available():
        raise AscendSlimError(f"--device {spec} asks for CUDA but this PyTorch sees no GPU: use --device cpu")
    if index >= torch.cuda.device_count():
        raise AscendSlimError(f"--device {spec}: GPU {index} does not exist ({torch.cuda.device_count()} visible)")
    return torch.device("cuda", index)


def init_distributed(device: str | None) -> DistContext:
    """Read torchrun's environment, choose the device and join the process group when there are several ranks."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    ctx = DistContext(select_device(device, local_rank), rank, local_rank, world_size)
    if ctx.distributed and not dist.is_initialized():
        if ctx.device.type == "cuda":
            torch.cuda.set_device(ctx.device)
        dist.init_process_group("nccl" if ctx.device.type == "cuda" else "gloo", timeout=PROCESS_GROUP_TIMEOUT)
    return ctx


def wrap_model(model: nn.Module, ctx: DistContext, sync_bn: bool = False) -> nn.Module:
    """``model`` itself for one process; otherwise wrapped in DDP (BatchNorm synchronised with ``sync_bn``).

    SyncBatchNorm needs CUDA; it replaces the BatchNorm2d modules of ``model`` in place (same state-dict keys).
    """
    if not ctx.distributed:
        return model
    if sync_bn:
        if ctx.device.type != "cuda":
            raise AscendSlimError("--sync-bn needs CUDA devices (PyTorch's SyncBatchNorm has no CPU kernel)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def close_distributed() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()
