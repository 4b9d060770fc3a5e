"""Unstructured L1 magnitude pruning of conv weights (Deep Compression's first step), made permanent.

The smallest-magnitude weights become plain zeros in the state dict (``torch.nn.utils.prune`` is applied and
then removed, so no ``weight_orig``/``weight_mask`` reparametrisation is left). ``scope="global"`` ranks all
conv weights together; ``"layer"`` prunes the same fraction of every conv (Ultralytics ``prune()``). Dense
runtimes do not get faster and the raw checkpoint keeps its size; only a compressed file shrinks.
"""

from __future__ import annotations

import copy
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from torch import nn
from torch.nn.utils import prune

from ..errors import AscendSlimError
from ..model.checkpoint import save_checkpoint
from ..model.yolo import YOLOv5

SCOPES = ("global", "layer")


@dataclass
class MagnitudeResult:
    """The pruned copy (``history`` ends with ``record``) and the sparsity of each conv weight."""

    model: YOLOv5
    record: dict


def conv_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of exact zeros in each Conv2d weight, by qualified module name."""
    return {name: float((m.weight == 0).float().mean()) for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d)}


def _total_sparsity(model: nn.Module, convs_only: bool) -> float:
    tensors = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)] if convs_only else \
        list(model.parameters())
    return sum(int((t == 0).sum()) for t in tensors) / sum(t.numel() for t in tensors)


def magnitude_prune(model: YOLOv5, amount: float, scope: str = "global") -> MagnitudeResult:
    """Zero the fraction ``amount`` of conv weights with the smallest |w| (globally or per layer) in a copy."""
    if not 0.0 <= amount < 1.0:
        raise AscendSlimError(f"magnitude amount must lie in [0, 1), got {amount}")
    if scope not in SCOPES:
        raise AscendSlimError(f"unknown magnitude scope {scope!r}: choose global or layer")
    pruned = copy.deepcopy(model)
    convs = [m for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    if scope == "global":
        prune.global_unstructured([(m, "weight") for m in convs], pruning_method=prune.L1Unstructured, amount=amount)
    else:
        for m in convs:
            prune.l1_unstructured(m, "weight", amount=amount)
    for m in convs:
        prune.remove(m, "weight")
    record = {"action": "prune", "method": "magnitude", "amount": amount, "scope": scope,
              "conv_sparsity": _total_sparsity(pruned, convs_only=True),
              "param_sparsity": _total_sparsity(pruned, convs_only=False), "layers": conv_sparsity(pruned)}
    pruned.history.append(record)
    return MagnitudeResult(pruned, record)


def checkpoint_sizes(model: YOLOv5, img_size: int = 640) -> dict[str, int]:
    """Bytes of the model's ascend-slim checkpoint: ``raw`` and ``compressed`` (zlib/deflate level 6, as zip)."""
    with tempfile.TemporaryDirectory(prefix="ascend-slim-size-") as tmp:
        data = Path(save_checkpoint(Path(tmp) / "model.pt", model, img_size=img_size)).read_bytes()
    return {"raw": len(data), "compressed": len(zlib.compress(data, 6))}
