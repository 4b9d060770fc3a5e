"""Where each conv of a channel-pruned model sits in the original: kept output and input channel indices.

For every Conv2d of the model (Conv+BN units and Detect's convs), :func:`channel_correspondence` gives the
original output channels the pruned conv keeps (all of them for Detect) and the original input channels it
still reads, as indices into the original conv's *input tensor*: a Concat's producers follow one another
(offsets), SPP/SPPF's ``cv2`` reads ``cv1``'s kept channels once per pooled copy, a Focus stem reads the
image four times. Surgery slices weights with it and reconstruction maps an original layer onto its pruned
twin with it. Conv names are the same in both models unless layers were removed (:mod:`.depth` drops residual
bottlenecks, so ``model.4.m.1`` of the shallower model is ``model.4.m.2`` of the original):
:func:`with_original_names` then records each conv's name in the original.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from .groups import ChannelGraph, Segment


@dataclass(frozen=True)
class ConvCorrespondence:
    """One conv of the pruned model against the original.

    ``out_index``: kept output channels of the original conv (ascending; every channel for Detect convs).
    ``in_index``: kept input channels, indices into the original conv's input (Concat offsets and SPP(F) or
    Focus copies included). ``bn`` names the unit's BatchNorm, None for Detect convs (they carry a bias).
    ``reads_features`` is False for a conv that reads only the image (the stem): nothing it reads is prunable.
    ``sources`` are the units whose outputs it reads (several summed behind a residual add). ``original_conv``
    and ``original_bn`` name the conv and BatchNorm in the original model ("" when they are ``conv`` and ``bn``).
    """

    conv: str
    bn: str | None
    out_index: torch.Tensor
    in_index: torch.Tensor
    out_width: int
    in_width: int
    reads_features: bool
    sources: tuple[str, ...]
    original_conv: str = ""
    original_bn: str = ""

    @property
    def source_conv(self) -> str:
        """The conv's qualified name in the original model."""
        return self.original_conv or self.conv

    @property
    def source_bn(self) -> str | None:
        """The BatchNorm's qualified name in the original model (None for Detect convs)."""
        return None if self.bn is None else self.original_bn or self.bn

    @property
    def reads_pruned(self) -> bool:
        return self.in_index.numel() < self.in_width

    @property
    def writes_pruned(self) -> bool:
        return self.out_index.numel() < self.out_width

    def slice(self, weight: torch.Tensor) -> torch.Tensor:
        """The original conv ``weight`` ``[out, in, kh, kw]`` restricted to the kept outputs and inputs."""
        return weight.index_select(0, self.out_index).index_select(1, self.in_index)


def input_index(segments: Sequence[Segment], keep: Sequence[torch.Tensor]) -> torch.Tensor:
    """Kept input channels of a conv reading ``segments``, as indices into its original input."""
    parts, offset = [], 0
    for s in segments:
        parts.append(offset + (torch.arange(s.width) if s.group is None else keep[s.group]))
        offset += s.width
    return torch.cat(parts)


def channel_correspondence(graph: ChannelGraph, keep: Sequence[torch.Tensor]) -> dict[str, ConvCorrespondence]:
    """Every conv of the model of ``graph`` pruned to ``keep`` (kept original indices per group, ascending),
    keyed by the conv's qualified name, in the order the model runs them.

    ``keep`` must pass :func:`.surgery.check_keep`; indices are sorted here, as the pruned model holds them.
    """
    keep = [k.long().sort().values for k in keep]
    units = {unit.conv: unit for unit in graph.units.values()}
    result = {}
    for conv, segments in graph.inputs.items():
        unit = units.get(conv)
        if unit is not None:
            out_index, out_width, bn = keep[graph.unit_group[unit.name]], unit.width, unit.bn
        else:
            width = graph.detect_widths[conv]
            out_index, out_width, bn = torch.arange(width), width, None
        result[conv] = ConvCorrespondence(conv, bn, out_index, input_index(segments, keep), out_width,
                                          sum(s.width for s in segments), any(s.group is not None for s in segments),
                                          tuple(dict.fromkeys(u for s in segments for u in s.sources)))
    return result


def with_original_names(correspondence: dict[str, ConvCorrespondence],
                        rename: Callable[[str], str]) -> dict[str, ConvCorrespondence]:
    """``correspondence`` of a model whose module names differ from the original's: ``rename`` maps a qualified
    module name of the model to the original's (:func:`.depth.original_name`)."""
    return {name: replace(c, original_conv=rename(c.conv), original_bn="" if c.bn is None else rename(c.bn))
            for name, c in correspondence.items()}
