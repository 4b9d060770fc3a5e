"""Depth: drop residual bottlenecks, chosen without labels by recoverability per latency saved (PRACTISE).

A C3 bottleneck with a shortcut computes ``x + cv2(cv1(x))``; without it the stream is ``x``, an exact identity
path, so a shallower model is the same spec with that entry of the C3's ``m`` list removed and every other
weight copied (yolov5n has 7 such blocks, all in the backbone: the head's C3s have no shortcut). Blocks are named
by their place in the original (``model.4.m.1``); the shallower model numbers its bottlenecks afresh, and
:func:`original_name` maps its module names back, which :func:`depth_correspondence` gives reconstruction.

Choosing (Wang et al., CVPR 2023, "Practical Network Acceleration with Tiny Sets"): every block is dropped on its
own, the layers from its C3 on are re-fitted by least squares to the original on unlabelled images
(:func:`.reconstruct.reconstruct`; the C3's ``cv3`` is 1x1, so its re-fit is a 1x1 adaptor folded into the next
conv), and what is left of the error at the heads, divided by the fraction of the cost it saves, ranks it:
the block that loses least per unit of latency goes first.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..data.unlabelled import ImageSource, letterboxed
from ..errors import AscendSlimError
from ..model.common import C3, Bottleneck
from ..model.cost import model_cost
from ..model.yolo import YOLOv5
from .correspondence import ConvCorrespondence, channel_correspondence, with_original_names
from .groups import build_graph
from .reconstruct import reconstruct

_BLOCK = re.compile(r"^model\.(\d+)\.m\.(\d+)(\.|$)")


def residual_blocks(model: YOLOv5) -> list[str]:
    """The bottlenecks of ``model`` with a residual add (``model.L.m.j``), in model order."""
    return [f"model.{i}.m.{j}" for i, layer in enumerate(model.model) if isinstance(layer, C3)
            for j, block in enumerate(layer.m) if isinstance(block, Bottleneck) and block.add]


def _dropped_by_layer(blocks: Sequence[str]) -> dict[int, set[int]]:
    dropped: dict[int, set[int]] = {}
    for name in blocks:
        match = _BLOCK.match(name)
        if match is None or match.group(3):
            raise AscendSlimError(f"{name!r} does not name a bottleneck (model.<layer>.m.<index>)")
        dropped.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    return dropped


def original_name(name: str, blocks: Sequence[str]) -> str:
    """The original's name of module ``name`` of the model :func:`drop_blocks` made by dropping ``blocks``."""
    match = _BLOCK.match(name)
    dropped = _dropped_by_layer(blocks).get(int(match.group(1)), set()) if match else set()
    if not dropped:
        return name
    kept = [j for j in range(int(match.group(2)) + len(dropped) + 1) if j not in dropped]
    return f"model.{match.group(1)}.m.{kept[int(match.group(2))]}{name[match.end(2):]}"


def drop_blocks(model: YOLOv5, blocks: Sequence[str]) -> YOLOv5:
    """A new model without the residual bottlenecks ``blocks`` (names from :func:`residual_blocks`), every other
    weight copied; ``history`` is copied unchanged (the caller appends its record)."""
    available = residual_blocks(model)
    unknown = [b for b in blocks if b not in available]
    if unknown or len(set(blocks)) != len(blocks):
        raise AscendSlimError(f"cannot drop {', '.join(unknown) or 'a block twice'}: the residual bottlenecks of "
                              f"this model are {', '.join(available) or 'none'}")
    spec = copy.deepcopy(model.spec)
    for layer, dropped in _dropped_by_layer(blocks).items():
        spec["layers"][layer]["m"] = [b for j, b in enumerate(spec["layers"][layer]["m"]) if j not in dropped]
    with torch.device("meta"):
        shallow = YOLOv5.from_spec(spec)
    source = model.state_dict()
    state = {key: source[original_name(key, blocks)] for key in shallow.state_dict()}
    shallow = shallow.to_empty(device=next(model.parameters()).device)
    shallow.load_state_dict(state)
    shallow.history = copy.deepcopy(model.history)
    return shallow.train(model.training)


def depth_correspondence(model: YOLOv5, blocks: Sequence[str],
                         keep: Sequence[torch.Tensor] | None = None) -> dict[str, ConvCorrespondence]:
    """Every conv of ``model`` (the original without ``blocks``, then channel-pruned to ``keep`` on the shallow
    model's groups when given) against the original, as :func:`.reconstruct.reconstruct` takes it."""
    graph = build_graph(model)
    keep = [torch.arange(g.width) for g in graph.groups] if keep is None else keep
    return with_original_names(channel_correspondence(graph, keep), lambda name: original_name(name, blocks))


def head_error(original: YOLOv5, model: YOLOv5, images: torch.Tensor) -> float:
    """Relative L2 error of ``model``'s raw heads against ``original``'s on ``images``, all levels together,
    relative to the original heads' spread over images and positions."""
    with torch.no_grad():
        a, b = original.eval()(images), model.eval()(images)
    spread = sum(((h - h.mean((0, 2, 3), keepdim=True)) ** 2).sum() for h in a)
    return float((sum(((h - g) ** 2).sum() for h, g in zip(a, b)) / spread).sqrt())


@dataclass(frozen=True)
class BlockScore:
    """One block dropped on its own: head error after the local re-fit, fraction of the cost saved, and their
    ratio (lower drops first)."""

    block: str
    error: float
    saved: float

    @property
    def score(self) -> float:
        return self.error / max(self.saved, 1e-12)


def macs_cost(img_size: int) -> Callable[[YOLOv5], float]:
    """Conv multiply-accumulates at ``img_size``: the default cost of :func:`score_blocks`."""
    return lambda model: float(model_cost(model, img_size).macs)


def score_blocks(original: YOLOv5, images: Sequence[ImageSource], img_size: int = 320,
                 cost: Callable[[YOLOv5], float] | None = None, recover_layers: int = 1,
                 samples_per_image: int = 256, ridge: float = 1e-2) -> list[BlockScore]:
    """Every residual block of ``original`` scored by recoverability per cost saved, best (lowest) first.

    Each block is dropped alone; the ``recover_layers`` top-level layers from its C3 on are re-fitted on
    ``images`` (no labels) at ``img_size``, and the error left at the heads on the same images is divided by
    the fraction of ``cost`` (default: conv MACs; any function of a model, e.g. a measured latency) it saves.
    """
    if not images:
        raise AscendSlimError("scoring blocks needs at least one image")
    cost = cost or macs_cost(img_size)
    base = cost(original)
    tensor = letterboxed(images, img_size)
    scores = []
    for block in residual_blocks(original):
        shallow = drop_blocks(original, [block]).eval()
        layer = int(block.split(".")[1])
        reconstruct(original, shallow, depth_correspondence(shallow, [block]), images, samples_per_image, ridge,
                    img_size, progress=False, layers=range(layer, min(layer + recover_layers, len(original.model))))
        scores.append(BlockScore(block, head_error(original, shallow, tensor), 1 - cost(shallow) / base))
    return sorted(scores, key=lambda s: s.score)
