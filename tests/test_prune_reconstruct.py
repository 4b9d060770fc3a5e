"""Least-squares reconstruction on tiny pruned models: fitted on a few VOC train photos, judged on held-out VOC val
photos against the original; exact when nothing is pruned; every layout (C3 with and without shortcut, SPP and
SPPF, Focus, two- and three-way Concat, a two-level Detect); the float16, recomputing stream agrees with the
float32 one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from prune_cases import CUSTOM, random_bn_model

from ascend_slim import core
from ascend_slim.errors import AscendSlimError
from ascend_slim.imageio import read_image
from ascend_slim.prune import build_graph, get_importance, prune_model
from ascend_slim.prune.correspondence import channel_correspondence
from ascend_slim.prune.reconstruct import patches, reconstruct
from ascend_slim.prune.uniform import plan_uniform

IMG = 96
FIT_IMAGES = 8


def voc_split(voc_root: Path, split: str, n: int) -> list[Path]:
    voc = voc_root / "VOC2007"
    ids = (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split()[:n]
    return [voc / "JPEGImages" / f"{i}.jpg" for i in ids]


@pytest.fixture(scope="module")
def fit_images(voc_root: Path) -> list[Path]:
    return voc_split(voc_root, "train", FIT_IMAGES)


@pytest.fixture(scope="module")
def held_out(voc_root: Path) -> torch.Tensor:
    tensor, _, _ = core.preprocess([read_image(p) for p in voc_split(voc_root, "val", 4)], (IMG, IMG))
    return torch.from_numpy(np.ascontiguousarray(tensor))


def head_error(original: torch.nn.Module, pruned: torch.nn.Module, x: torch.Tensor) -> float:
    """L2 error of the pruned model's raw heads against the original's, all levels together, relative to the
    original heads' variation over images and positions (a random model's heads are mostly its Detect bias)."""
    with torch.no_grad():
        a, b = original(x), pruned(x)
    spread = sum(((h - h.mean((0, 2, 3), keepdim=True)) ** 2).sum() for h in a)
    return float((sum(((h - g) ** 2).sum() for h, g in zip(a, b)) / spread).sqrt())


def pruned_pair(cfg, fraction: float, seed: int):
    model = random_bn_model(cfg, seed=seed, nc=3)
    graph = build_graph(model)
    plan = plan_uniform(graph, get_importance("slim")(model, graph), fraction)
    return model, prune_model(model, graph, plan.keep).eval(), channel_correspondence(graph, plan.keep)


@pytest.mark.parametrize(("cfg", "fraction"), [("yolov5n", 0.3), (CUSTOM, 0.4)])
def test_reduces_held_out_error(cfg, fraction: float, fit_images: list[Path], held_out: torch.Tensor) -> None:
    original, pruned, corr = pruned_pair(cfg, fraction, seed=11)
    before = head_error(original, pruned, held_out)
    report = reconstruct(original, pruned, corr, fit_images, samples_per_image=256, img_size=IMG, progress=False)
    after = head_error(original, pruned, held_out)
    assert before > 0.5 and after < 0.1 * before, (before, after)  # measured 1.44 -> 0.062, 4.66 -> 0.129
    fitted = {f.conv for f in report.layers}
    assert fitted == {name for name, c in corr.items() if c.reads_features}  # all but the stem, Detect included
    assert all(f.after <= f.before + 1e-9 for f in report.layers)
    assert np.median([f.after / f.before for f in report.layers]) < 0.5
    assert report.cache_dtype == "float32" and report.images == FIT_IMAGES


def test_layouts_are_covered() -> None:
    """The two models above reach every kind of reader: Concat (two- and three-way), SPP and SPPF, C3 bottlenecks
    with and without shortcut (residual groups), the Focus stem (skipped) and Detect."""
    for cfg, readers in (("yolov5n", {"model.9.cv2.conv", "model.13.cv1.conv", "model.24.m.2"}),
                         (CUSTOM, {"model.3.cv2.conv", "model.6.cv2.conv", "model.9.cv1.conv", "model.13.m.1"})):
        model = random_bn_model(cfg, seed=0, nc=3)
        graph = build_graph(model)
        assert readers <= set(graph.inputs)
        assert any(len(g.units) > 1 for g in graph.groups)  # a residual stream
    assert not build_graph(random_bn_model(CUSTOM, nc=3)).inputs["model.0.conv.conv"][0].group  # Focus reads the image


@pytest.mark.parametrize("cfg", ["yolov5n", CUSTOM])
def test_exact_when_nothing_is_pruned(cfg, fit_images: list[Path], held_out: torch.Tensor) -> None:
    original, pruned, corr = pruned_pair(cfg, 0.0, seed=12)
    report = reconstruct(original, pruned, corr, fit_images[:3], samples_per_image=64, img_size=IMG, progress=False)
    assert max(f.after for f in report.layers) < 1e-5 and len(report.layers) == len(corr) - 1
    assert head_error(original, pruned, held_out) < 1e-3  # float32 convs vs the float64 fit
    state = original.state_dict()
    for key, value in pruned.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=1e-4, atol=1e-5)


def test_float16_stream_that_recomputes_agrees(fit_images: list[Path], held_out: torch.Tensor) -> None:
    """A cache that holds frontiers only as float16, and not the stem's output (layer 1 recomputes the stem from
    the images on every pass), fits nearly the same model as the float32 stream."""
    results = []
    for cache_bytes in (1e9, 3e5):
        original, pruned, corr = pruned_pair("yolov5n", 0.3, seed=13)
        before = head_error(original, pruned, held_out)
        report = reconstruct(original, pruned, corr, fit_images[:4], samples_per_image=128, img_size=IMG,
                             cache_bytes=cache_bytes, progress=False)
        results.append((report, head_error(original, pruned, held_out)))
    (full, full_err), (small, small_err) = results
    assert (full.cache_dtype, small.cache_dtype) == ("float32", "float16")
    assert full_err < 0.1 * before and small_err < 0.1 * before  # measured 2.0 -> 0.069 and 0.097
    for a, b in zip(full.layers, small.layers):  # float16 rounding is a floor of about 1e-3 relative error
        assert a.conv == b.conv and a.samples == b.samples
        assert b.after == pytest.approx(a.after, rel=0.05, abs=3e-3)


def test_patches_match_the_convolution() -> None:
    """im2col rows times the flattened weight give the conv's output at those positions (3x3 stride 2, 1x1)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 11, 13, generator=g)
    for conv in (torch.nn.Conv2d(5, 4, 3, 2, 1, bias=False), torch.nn.Conv2d(5, 4, 1, bias=False),
                 torch.nn.Conv2d(5, 4, 6, 2, 2, bias=False)):
        out = conv(x[None])[0]
        positions = torch.randperm(out[0].numel(), generator=g)[:7]
        rows = patches(x, conv, positions, out.shape[2])
        assert rows.shape == (7, conv.weight[0].numel() + 1) and (rows[:, -1] == 1).all()
        expected = out.flatten(1)[:, positions].T.double()
        torch.testing.assert_close(rows[:, :-1] @ conv.weight.flatten(1).T.double(), expected, rtol=1e-5, atol=1e-5)


def test_bad_arguments(fit_images: list[Path]) -> None:
    original, pruned, corr = pruned_pair("yolov5n", 0.1, seed=14)
    with pytest.raises(AscendSlimError, match="at least one image"):
        reconstruct(original, pruned, corr, [], img_size=IMG)
    with pytest.raises(AscendSlimError, match="samples per image"):
        reconstruct(original, pruned, corr, fit_images, samples_per_image=0, img_size=IMG)
    with pytest.raises(AscendSlimError, match="multiple of 32"):
        reconstruct(original, pruned, corr, fit_images, img_size=100)
    _, _, other = pruned_pair("yolov5n", 0.3, seed=14)
    with pytest.raises(AscendSlimError, match=r"does not describe these models at model\.0\.conv"):
        reconstruct(original, pruned, other, fit_images, img_size=IMG)
