"""What is coupled: the channel dependency graph of a YOLOv5 model, derived from its module tree.

Every Conv+BN block is a *unit* whose output channels can be pruned. Units whose outputs meet in a residual
add (a shortcut C3's ``cv1`` and the ``cv2`` of each of its Bottlenecks that adds) must keep one index set:
they form one *group* (union-find over the adds). Every Conv2d of the model (units' convs and Detect's
convs) has its input described as a list of *segments* in channel order: a Concat lists its producers'
segments one after the other, SPP/SPPF's ``cv2`` reads ``cv1``'s segment once per pooled copy, Focus reads
its input four times, Upsample and max-pools pass segments through. Nothing here knows layer indices: the
walk follows each layer's ``from`` and each block's children, so any yaml built from the supported modules
works (v5.0 Focus/SPP and v6 stem/SPPF layouts, n..x).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import AscendSlimError
from ..model.common import C3, SPP, SPPF, Concat, Conv, Focus
from ..model.yolo import Detect, YOLOv5


@dataclass(frozen=True)
class Unit:
    """One Conv+BN block whose output channels can be pruned.

    ``name`` is the block's qualified module name (``model.2.cv1``); its conv and BatchNorm are ``name.conv``
    and ``name.bn``. ``spec_path`` locates its width in ``spec["layers"][layer]`` (``("m", 0, "cv2")``).
    """

    name: str
    layer: int
    spec_path: tuple[str | int, ...]
    width: int

    @property
    def conv(self) -> str:
        return f"{self.name}.conv"

    @property
    def bn(self) -> str:
        return f"{self.name}.bn"


@dataclass(frozen=True)
class Segment:
    """A run of ``width`` input channels of a conv: all channels of ``group`` in order, or, when ``group`` is
    None, fixed channels (the image) that are never pruned. ``sources`` are the units whose outputs are summed
    into these channels (more than one behind residual adds); bias folding needs them."""

    group: int | None
    width: int
    sources: tuple[str, ...]


@dataclass
class Group:
    """Units pruned with one index set (one unit, or a residual stream); ``width`` channels each."""

    index: int
    units: list[str]
    width: int


@dataclass
class ChannelGraph:
    """Units, their groups, the input segments of every Conv2d (keyed by the conv's module name, in the order
    the model runs them) and the output widths of Detect's convs (never pruned)."""

    units: dict[str, Unit]
    groups: list[Group]
    unit_group: dict[str, int]
    inputs: dict[str, list[Segment]]
    detect_widths: dict[str, int]

    def consumers(self, group: int) -> list[str]:
        """Names of the convs that read any channel of ``group``."""
        return [conv for conv, segments in self.inputs.items() if any(s.group == group for s in segments)]


@dataclass(frozen=True)
class _Part:
    """A run of channels of a tensor during the walk: ``units`` summed (empty for the image)."""

    units: tuple[str, ...]
    width: int


class _Walker:
    def __init__(self) -> None:
        self.units: dict[str, Unit] = {}
        self.parent: dict[str, str] = {}
        self.inputs: dict[str, list[_Part]] = {}
        self.detect_widths: dict[str, int] = {}

    def find(self, name: str) -> str:
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    def unit(self, block: Conv, name: str, layer: int, spec_path: tuple[str | int, ...],
             inputs: list[_Part]) -> list[_Part]:
        """Register a Conv+BN block reading ``inputs``; returns its output as parts."""
        if block.bn is None:
            raise AscendSlimError(f"{name} has no BatchNorm (the checkpoint is fused): channel pruning needs "
                                  "the unfused checkpoint (BN gamma is the importance)")
        width = block.conv.out_channels
        self.units[name] = Unit(name, layer, spec_path, width)
        self.parent[name] = name
        self.inputs[f"{name}.conv"] = inputs
        return [_Part((name,), width)]

    def c3(self, block: C3, name: str, i: int, x_in: list[_Part]) -> list[_Part]:
        x = self.unit(block.cv1, f"{name}.cv1", i, ("cv1",), x_in)
        for j, b in enumerate(block.m):
            hidden = self.unit(b.cv1, f"{name}.m.{j}.cv1", i, ("m", j, "cv1"), x)
            y = self.unit(b.cv2, f"{name}.m.{j}.cv2", i, ("m", j, "cv2"), hidden)
            if b.add:  # x + y: one index set for both, the sum carries both units' constants
                (xp,), (yp,) = x, y
                self.union(xp.units[0], yp.units[0])
                x = [_Part(xp.units + yp.units, yp.width)]
            else:
                x = y
        side = self.unit(block.cv2, f"{name}.cv2", i, ("cv2",), x_in)
        return self.unit(block.cv3, f"{name}.cv3", i, ("cv3",), x + side)

    def layer(self, module: nn.Module, i: int, x_in: list[list[_Part]]) -> list[_Part]:
        name = f"model.{i}"
        if isinstance(module, Conv):
            return self.unit(module, name, i, ("c2",), x_in[0])
        if isinstance(module, Focus):  # four pixel phases of the input stacked on channels
            return self.unit(module.conv, f"{name}.conv", i, ("c2",), x_in[0] * 4)
        if isinstance(module, C3):
            return self.c3(module, name, i, x_in[0])
        if isinstance(module, (SPPF, SPP)):  # cv1, then its max-pooled copies (3 for SPPF, len(k) for SPP)
            hidden = self.unit(module.cv1, f"{name}.cv1", i, ("cv1",), x_in[0])
            copies = 4 if isinstance(module, SPPF) else len(module.m) + 1
            return self.unit(module.cv2, f"{name}.cv2", i, ("cv2",), hidden * copies)
        if isinstance(module, nn.Upsample):
            return x_in[0]
        if isinstance(module, Concat):
            if module.d != 1:
                raise AscendSlimError(f"{name}: Concat along dimension {module.d} cannot be channel-pruned")
            return [p for parts in x_in for p in parts]
        if isinstance(module, Detect):  # input channels shrink, outputs never
            for k, parts in enumerate(x_in):
                self.inputs[f"{name}.m.{k}"] = parts
                self.detect_widths[f"{name}.m.{k}"] = module.m[k].out_channels
            return []
        raise AscendSlimError(f"{name}: module {type(module).__name__} is not supported by channel pruning")


def build_graph(model: YOLOv5) -> ChannelGraph:
    """The channel dependency graph of ``model`` (any YOLOv5 built from the supported modules, unfused)."""
    if getattr(model, "fused", False):
        raise AscendSlimError("the model is fused (no BatchNorm): channel pruning needs the unfused checkpoint")
    walker = _Walker()
    outputs: list[list[_Part]] = []
    for i, module in enumerate(model.model):
        sources = [module.f] if isinstance(module.f, int) else list(module.f)
        x_in = [[_Part((), 3)] if i == 0 else outputs[j if j >= 0 else i + j] for j in sources]
        outputs.append(walker.layer(module, i, x_in))
    index: dict[str, int] = {}  # group root -> group index, numbered in the order of their first unit
    groups: list[Group] = []
    unit_group: dict[str, int] = {}
    for u, unit in walker.units.items():
        g = index.setdefault(walker.find(u), len(groups))
        if g == len(groups):
            groups.append(Group(g, [], unit.width))
        groups[g].units.append(u)
        unit_group[u] = g
    inputs = {conv: [Segment(unit_group[p.units[0]] if p.units else None, p.width, p.units) for p in parts]
              for conv, parts in walker.inputs.items()}
    return ChannelGraph(walker.units, groups, unit_group, inputs, walker.detect_widths)
