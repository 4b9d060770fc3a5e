"""Recover a channel-pruned model without labels: layer-wise least-squares reconstruction.

After channels are removed, every conv that reads feature maps is re-fitted, in model order, so that its
pre-BN output at the kept channels matches the **original** network's, with its input taken from the
**pruned** network as already re-fitted up to there (errors do not accumulate). The input tensors are those the
pruned conv really receives (forward pre-hooks), so Concat, SPP(F), C3 branches and residual streams need no
special case. Per image, ``samples_per_image`` output positions are drawn; each gives one im2col row (every
kernel tap of every kept input channel, plus 1 for the bias). ``XᵀX`` and ``XᵀY`` accumulate in float64 over
all images, and the fit solves the ridge problem

    min ||X θ - Y||² + λ · mean(diag XᵀX) · ||w - w₀||²

with ``w₀`` the original weights sliced to the kept channels (the bias is not penalised). The fitted bias goes
into the BatchNorm's running mean (``BN(z + b; μ) = BN(z; μ - b)``), so BN statistics stay those of the
original; Detect convs (no BN) are fitted on their raw outputs with their own bias. Convs that read only the
image (the stem) compute exactly the original's kept channels and are skipped.

Streaming: a top-level layer is fitted at a time, a batch of images per forward. The *frontier* (the outputs of
earlier layers still read later, for both networks and all images, one tensor each) is held when it fits
``cache_bytes`` beside the one it replaces, as float32 when every frontier fits at 4 bytes per value, otherwise
float16; a frontier that does not fit is recomputed from the last one held (or from the images). The original's
targets of a layer are captured in one pass and kept only at the sampled positions. Memory therefore stays near
``cache_bytes`` plus the targets of one layer, whatever the depth of the model.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data.unlabelled import ImageSource, letterboxed
from ..errors import AscendSlimError
from ..model.yolo import YOLOv5
from .correspondence import ConvCorrespondence


@dataclass
class LayerFit:
    """One re-fitted conv: relative error ``||Xθ - Y|| / ||Y||`` of its pre-BN output at the sampled positions,
    with the sliced weights it had (``before``) and with the fitted ones (``after``)."""

    conv: str
    samples: int
    before: float
    after: float


@dataclass
class ReconstructionReport:
    """What :func:`reconstruct` did: per conv errors, the settings, wall and CPU seconds."""

    layers: list[LayerFit]
    images: int
    samples_per_image: int
    ridge: float
    img_size: int
    cache_dtype: str
    seconds: float
    cpu_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


class _Stop(Exception):
    """Raised by a hook once everything a pass needs is captured (the rest of the layer is not computed)."""


@dataclass
class _Stats:
    """Normal-equation sums of one conv: XᵀX, XᵀY, ΣY² and the number of rows."""

    xtx: torch.Tensor
    xty: torch.Tensor
    yy: float = 0.0
    rows: int = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.xtx += x.T @ x
        self.xty += x.T @ y
        self.yy += float((y * y).sum())
        self.rows += x.shape[0]

    def relative_error(self, theta: torch.Tensor) -> float:
        sse = (theta * (self.xtx @ theta)).sum() - 2 * (theta * self.xty).sum() + self.yy
        return float(sse.clamp(min=0).sqrt() / max(self.yy, 1e-30) ** 0.5)


def _conv_geometry(name: str, conv: nn.Conv2d) -> None:
    if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise AscendSlimError(f"{name}: reconstruction supports plain convs (groups 1, dilation 1, zero padding)")


def patches(x: torch.Tensor, conv: nn.Conv2d, positions: torch.Tensor, out_width: int) -> torch.Tensor:
    """im2col rows of one image ``x`` ``[C, H, W]`` at flat output ``positions``: ``[K, C*kh*kw + 1]`` float64,
    channel-major like ``conv.weight.flatten(1)``, with a trailing column of ones."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    oy, ox = positions // out_width, positions % out_width
    if (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):
        cols = x[:, oy, ox].T
    else:
        padded = F.pad(x, (pw, pw, ph, ph))
        rows = (oy * sh)[:, None] + torch.arange(kh)
        columns = (ox * sw)[:, None] + torch.arange(kw)
        cols = padded[:, rows[:, :, None], columns[:, None, :]].permute(1, 0, 2, 3).reshape(len(positions), -1)
    return torch.cat([cols.double(), torch.ones(len(positions), 1, dtype=torch.float64)], 1)


def _layer_inputs(i: int, f: int | list[int]) -> list[int]:
    """Indices of the layers layer ``i`` reads (-1: the image), in order."""
    if i == 0:
        return [-1]
    sources = [f] if isinstance(f, int) else list(f)
    return [j if j >= 0 else i + j for j in sources]


def _run_layer(module: nn.Module, i: int, live: dict[int, torch.Tensor]) -> torch.Tensor:
    idx = _layer_inputs(i, module.f)
    x = live[idx[0]] if isinstance(module.f, int) or i == 0 else [live[j] for j in idx]
    return module(x)


class _Stream:
    """Both networks' frontiers (one tensor per held layer output and network, all images) and passes over a layer
    from them, a batch of images at a time."""

    def __init__(self, original: YOLOv5, pruned: YOLOv5, images: Sequence[ImageSource], img_size: int,
                 batch_size: int, cache_bytes: float) -> None:
        self.models = (original, pruned)
        self.images, self.img_size = images, img_size
        self.batches = [slice(s, min(s + batch_size, len(images))) for s in range(0, len(images), batch_size)]
        n = len(original.model)
        reads = [_layer_inputs(i, m.f) for i, m in enumerate(original.model)]
        self.last_use = {j: max(k for k in range(n) if j in reads[k]) for j in range(-1, n - 1) if
                         any(j in r for r in reads)}
        self.sizes = self._output_sizes()
        biggest = max(self._held_values(i, []) for i in range(1, n - 1)) if n > 2 else 0
        self.dtype = torch.float32 if biggest * 4 <= cache_bytes else torch.float16
        self.cache_values = cache_bytes / torch.finfo(self.dtype).bits * 8
        self.start = 0  # layers from here on are computed per pass; the frontier holds what they read before it
        self.frontier: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def live_after(self, i: int) -> list[int]:
        """Layer outputs (-1: the image) still read by a layer after ``i``."""
        return [j for j, last in self.last_use.items() if j <= i < last]

    def _held_values(self, layer: int, held: Sequence[int]) -> int:
        """Values (all images, both networks) held while the frontier after ``layer`` replaces ``held``."""
        return sum(self.sizes[j] for j in set(self.live_after(layer)) | set(held)) * len(self.images)

    def _output_sizes(self) -> dict[int, int]:
        """Values per image of every layer output, summed over both networks (the image: 0, it is re-read)."""
        sizes = {-1: 0}
        x = torch.zeros(1, 3, self.img_size, self.img_size)
        for model in self.models:
            live = {-1: x}
            for i, module in enumerate(model.model[:-1]):
                live[i] = _run_layer(module, i, live)
                sizes[i] = sizes.get(i, 0) + live[i][0].numel()
        return sizes

    def _image_batch(self, batch: slice) -> torch.Tensor:
        return letterboxed(self.images[batch], self.img_size)

    def inputs(self, b: int, layer: int, which: int) -> dict[int, torch.Tensor]:
        """Network ``which``'s (0 original, 1 pruned) live outputs before ``layer`` for batch ``b``, float32."""
        batch = self.batches[b]
        if self.start == 0:
            live = {-1: self._image_batch(batch)}
        else:
            live = {j: pair[which][batch].float() for j, pair in self.frontier.items()}
        model = self.models[which]
        for i in range(self.start, layer):
            live[i] = _run_layer(model.model[i], i, live)
            live = {j: live[j] for j in self.live_after(i)}
        return live

    def advance(self, layer: int) -> None:
        """Hold the frontier after ``layer`` when it fits beside the one held now; otherwise keep computing from
        the one held now. Outputs still needed stay where they are; only new ones are allocated."""
        if layer == len(self.models[0].model) - 1 or self._held_values(layer, list(self.frontier)) > self.cache_values:
            return
        new = [j for j in self.live_after(layer) if j not in self.frontier]
        added: dict[int, list[torch.Tensor]] = {j: [] for j in new}
        for b, batch in enumerate(self.batches):
            for which in (0, 1):
                live = self.inputs(b, layer, which)
                live[layer] = _run_layer(self.models[which].model[layer], layer, live)
                for j in new:
                    if len(added[j]) == which:
                        added[j].append(torch.empty(len(self.images), *live[j].shape[1:], dtype=self.dtype))
                    added[j][which][batch] = live[j]
        keep = set(self.live_after(layer))
        self.frontier = {j: pair for j, pair in self.frontier.items() if j in keep}
        self.frontier.update({j: (tensors[0], tensors[1]) for j, tensors in added.items()})
        self.start = layer + 1


def _steps(convs: list[ConvCorrespondence], readers: dict[str, set[str]]) -> list[list[ConvCorrespondence]]:
    """``convs`` of one layer in passes: each conv as late as its readers inside the layer allow (a conv is fitted
    before anything that reads it), so a pass fits every conv whose input is final by then."""
    names = [c.conv for c in convs]
    depth: dict[str, int] = {}
    for name in reversed(names):  # run order reversed: readers come first
        depth[name] = 1 + max((depth[r] for r in readers[name] if r in depth), default=-1)
    last = max(depth.values())
    return [[c for c in convs if depth[c.conv] == d] for d in range(last, -1, -1)]


def reconstruct(original: YOLOv5, pruned: YOLOv5, correspondence: dict[str, ConvCorrespondence],
                images: Sequence[ImageSource], samples_per_image: int = 1024, ridge: float = 1e-2,
                img_size: int = 640, batch_size: int = 4, cache_bytes: float = 8e8, seed: int = 0,
                progress: bool = True, layers: Collection[int] | None = None) -> ReconstructionReport:
    """Re-fit ``pruned`` (in place) to ``original`` on unlabelled ``images`` (paths or BGR arrays), letterboxed to
    ``img_size`` square as ``eval`` feeds them; returns the per-conv errors.

    ``correspondence`` is :func:`.correspondence.channel_correspondence` of the plan that made ``pruned`` (with
    :func:`.correspondence.with_original_names` when its module names differ from the original's). ``layers``:
    the top-level layers whose convs are fitted (default all; nothing after the last of them is computed).
    """
    if not images:
        raise AscendSlimError("reconstruction needs at least one image")
    if samples_per_image < 1 or ridge < 0:
        raise AscendSlimError(f"reconstruction needs samples per image >= 1 and ridge >= 0, got "
                              f"{samples_per_image} and {ridge}")
    _check_pair(original, pruned, correspondence, img_size)
    start, cpu_start = time.perf_counter(), time.process_time()
    modes = (original.training, pruned.training)
    original.eval(), pruned.eval()
    try:
        with torch.no_grad():
            stream = _Stream(original, pruned, images, img_size, batch_size, cache_bytes)
            fits = _fit_all(stream, correspondence, samples_per_image, ridge, seed, progress, layers)
    finally:
        original.train(modes[0]), pruned.train(modes[1])
    return ReconstructionReport(fits, len(images), samples_per_image, ridge, img_size, str(stream.dtype).split(".")[-1],
                                time.perf_counter() - start, time.process_time() - cpu_start)


def _readers(correspondence: dict[str, ConvCorrespondence]) -> dict[str, set[str]]:
    """Per conv, the convs that read its unit's output directly."""
    readers: dict[str, set[str]] = {name: set() for name in correspondence}
    for name, c in correspondence.items():
        for unit in c.sources:
            readers[f"{unit}.conv"].add(name)
    return readers


def _check_pair(original: YOLOv5, pruned: YOLOv5, correspondence: dict[str, ConvCorrespondence],
                img_size: int) -> None:
    """Raise AscendSlimError unless ``correspondence`` maps ``original`` onto ``pruned`` and ``img_size`` fits."""
    stride = int(max(original.strides))
    if img_size < stride or img_size % stride:
        raise AscendSlimError(f"reconstruction image size {img_size} must be a positive multiple of {stride}")
    modules = (dict(original.named_modules()), dict(pruned.named_modules()))
    for name, c in correspondence.items():
        if c.source_conv not in modules[0] or name not in modules[1]:
            raise AscendSlimError(f"the channel correspondence names {name}, which the models lack")
        shape = (c.out_index.numel(), c.in_index.numel())
        if tuple(modules[1][name].weight.shape[:2]) != shape or \
                tuple(modules[0][c.source_conv].weight.shape[:2]) != (c.out_width, c.in_width):
            raise AscendSlimError(f"the channel correspondence does not describe these models at {name}: pass the "
                                  "one of the plan that pruned them (channel_correspondence(graph, plan.keep))")


def _fit_all(stream: _Stream, correspondence: dict[str, ConvCorrespondence], samples: int, ridge: float, seed: int,
             progress: bool, layers: Collection[int] | None) -> list[LayerFit]:
    original, pruned = stream.models
    modules = (dict(original.named_modules()), dict(pruned.named_modules()))
    readers = _readers(correspondence)
    chosen = set(range(len(original.model)) if layers is None else layers)
    fitted = [c for c in correspondence.values() if c.reads_features and int(c.conv.split(".")[1]) in chosen]
    generator = torch.Generator().manual_seed(seed)
    fits = []
    with tqdm(total=len(fitted), desc="reconstruct", unit="conv", disable=not progress) as bar:
        for layer in range(max(chosen, default=-1) + 1):
            prefix = f"model.{layer}."
            convs = [c for c in fitted if c.conv.startswith(prefix)]
            targets = _original_pass(stream, layer, convs, modules[0], samples, generator)
            for step in _steps(convs, readers) if convs else []:
                fits += _fit_step(stream, layer, step, targets, modules, ridge)
                bar.update(len(step))
                bar.set_postfix(conv=step[-1].conv, before=f"{fits[-1].before:.3f}", after=f"{fits[-1].after:.3f}")
            del targets
            stream.advance(layer)
    return fits


@dataclass
class _Targets:
    """The original's pre-BN outputs of one conv at the sampled positions: ``positions`` ``[N, K]`` (flat indices
    into the output map, ``width`` wide) and ``values`` ``[N, K, kept outputs]``, every image."""

    positions: torch.Tensor
    values: torch.Tensor
    width: int


def _original_pass(stream: _Stream, layer: int, convs: list[ConvCorrespondence], modules: dict[str, nn.Module],
                   samples: int, generator: torch.Generator) -> dict[str, _Targets]:
    """The original's pre-BN outputs of ``convs`` at ``samples`` positions per image drawn from ``generator``."""
    by_name = {c.conv: c for c in convs}
    targets: dict[str, _Targets] = {}
    batch = [slice(0)]

    def capture(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            height, width = out.shape[2:]
            n, index = height * width, by_name[name].out_index
            k = min(n, samples)
            if name not in targets:
                targets[name] = _Targets(torch.empty(len(stream.images), k, dtype=torch.long),
                                         torch.empty(len(stream.images), k, index.numel(), dtype=stream.dtype), width)
            t, first = targets[name], batch[0].start
            for i, y in enumerate(out):
                pos = torch.randperm(n, generator=generator)[:k].sort().values if n > k else torch.arange(n)
                t.positions[first + i] = pos
                t.values[first + i] = y.flatten(1)[:, pos].index_select(0, index).T
        return hook

    handles = [modules[c.source_conv].register_forward_hook(capture(c.conv)) for c in convs]
    try:
        for b in range(len(stream.batches) if convs else 0):
            batch[0] = stream.batches[b]
            _run_layer(stream.models[0].model[layer], layer, stream.inputs(b, layer, 0))
    finally:
        for h in handles:
            h.remove()
    return targets


def _fit_step(stream: _Stream, layer: int, step: list[ConvCorrespondence], targets: dict[str, _Targets],
              modules: tuple[dict[str, nn.Module], dict[str, nn.Module]], ridge: float) -> list[LayerFit]:
    """One pass of the pruned network over ``layer`` accumulating the normal equations of ``step``'s convs
    (their inputs are final), then the ridge solve of each."""
    stats = {}
    for c in step:
        conv = modules[1][c.conv]
        _conv_geometry(c.conv, conv)
        d = conv.weight[0].numel() + 1
        stats[c.conv] = _Stats(torch.zeros(d, d, dtype=torch.float64),
                               torch.zeros(d, c.out_index.numel(), dtype=torch.float64))
    batch = [slice(0)]
    seen: set[str] = set()

    def capture(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            t = targets[name]
            rows = [patches(x, module, pos, t.width) for x, pos in zip(args[0], t.positions[batch[0]])]
            stats[name].add(torch.cat(rows), t.values[batch[0]].flatten(0, 1).double())
            seen.add(name)
            if len(seen) == len(step):
                raise _Stop
        return hook

    handles = [modules[1][c.conv].register_forward_pre_hook(capture(c.conv)) for c in step]
    try:
        for b in range(len(stream.batches)):
            batch[0] = stream.batches[b]
            seen.clear()
            with contextlib.suppress(_Stop):
                _run_layer(stream.models[1].model[layer], layer, stream.inputs(b, layer, 1))
    finally:
        for h in handles:
            h.remove()
    return [_solve(c, stats[c.conv], modules, ridge) for c in step]


def _solve(c: ConvCorrespondence, stats: _Stats, modules: tuple[dict[str, nn.Module], dict[str, nn.Module]],
           ridge: float) -> LayerFit:
    """Ridge-solve one conv toward its sliced original weights and write weights and bias into the pruned model."""
    original_conv, conv = modules[0][c.source_conv], modules[1][c.conv]
    d = stats.xtx.shape[0] - 1
    if c.bn is None:
        prior_bias, current_bias = original_conv.bias.double(), conv.bias.double()
    else:
        mean = modules[0][c.source_bn].running_mean.index_select(0, c.out_index).double()
        prior_bias, current_bias = torch.zeros_like(mean), mean - modules[1][c.bn].running_mean.double()
    prior = torch.cat([c.slice(original_conv.weight).flatten(1).T.double(), prior_bias[None]])
    current = torch.cat([conv.weight.flatten(1).T.double(), current_bias[None]])
    penalty = torch.zeros(d + 1, dtype=torch.float64)
    penalty[:d] = ridge * float(stats.xtx.diagonal()[:d].mean())
    theta = torch.linalg.solve(stats.xtx + torch.diag(penalty), stats.xty + penalty[:, None] * prior)
    conv.weight.copy_(theta[:d].T.reshape(conv.weight.shape).to(conv.weight.dtype))
    if c.bn is None:
        conv.bias.copy_(theta[d].to(conv.bias.dtype))
    else:
        bn = modules[1][c.bn]
        bn.running_mean.copy_((modules[0][c.source_bn].running_mean.index_select(0, c.out_index).double() - theta[d])
                              .to(bn.running_mean.dtype))
    return LayerFit(c.conv, stats.rows, stats.relative_error(current), stats.relative_error(theta))
