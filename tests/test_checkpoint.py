"""Checkpoints: safe import of official Ultralytics files, refusal of anything else, own format, class remap."""

from __future__ import annotations

import copy
import os
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ascend_slim.classes import COCO_CLASSES, VOC_CLASSES, class_map
from ascend_slim.errors import AscendSlimError
from ascend_slim.model import YOLOv5
from ascend_slim.model import common as ascend_common
from ascend_slim.model.checkpoint import load_weights, save_checkpoint
from ascend_slim.model.remap import remap_classes
from ascend_slim.model.safe_pickle import read_checkpoint
from ascend_slim.model.spec import read_yaml
from ascend_slim.model.yolo import Detect


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def official(yolov5n_pt: Path) -> tuple[YOLOv5, dict]:
    return load_weights(yolov5n_pt)


def test_official_yolov5n_imports(official: tuple[YOLOv5, dict], yolov5n_pt: Path) -> None:
    model, info = official
    assert info["source_format"] == "ultralytics" and info["weights"] == "model" and info["img_size"] == 640
    assert model.names == list(COCO_CLASSES) and model.strides == [8.0, 16.0, 32.0]
    np.testing.assert_array_equal(model.anchors_px()[0], [[10, 13], [16, 30], [33, 23]])
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert info["history"][0]["action"] == "import" and len(info["history"][0]["sha256"]) == 64
    assert n_params(model) == 1_872_157
    stored = read_checkpoint(yolov5n_pt)["model"]._modules["model"]._modules["24"]._modules["m"]._modules["2"]
    torch.testing.assert_close(model.state_dict()["model.24.m.2.weight"], stored._parameters["weight"].float(),
                               rtol=0, atol=0)
    assert n_params(copy.deepcopy(model).fuse()) == 1_867_405


# -- files that must be refused ---------------------------------------------------------------------------
class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class UnknownModule(nn.Module):
    pass


def test_checkpoint_that_would_run_a_shell_command_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _RunsShell(marker), "epoch": 1}, evil)
    assert zipfile.is_zipfile(evil)  # a genuine torch zip checkpoint
    with pytest.raises(AscendSlimError, match=r"posix\.system|os\.system|nt\.system"):
        load_weights(evil)
    assert not marker.exists()


def test_checkpoint_with_unknown_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "unknown.pt"
    torch.save({"model": UnknownModule()}, path)
    with pytest.raises(AscendSlimError, match=rf"{__name__}\.UnknownModule"):
        load_weights(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_unreadable_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(AscendSlimError, match=r"bad\.pt"):
        load_weights(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AscendSlimError, match="not found"):
        load_weights(tmp_path / "nope.pt")


def test_plain_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    torch.save(YOLOv5.from_yaml("yolov5n").state_dict(), path)
    with pytest.raises(AscendSlimError, match="neither"):
        load_weights(path)


# -- Ultralytics-style pickles written here (v5.0 Focus/SPP layout, v7 DetectionModel, EMA) -------------------
def _ultralytics_pickle(path: Path, monkeypatch: pytest.MonkeyPatch, cfg: dict | None, models: dict[str, YOLOv5],
                        model_class: str = "Model", names_as_dict: bool = False) -> Path:
    """Save models the way YOLOv5's train.py does: whole pickled ``models.yolo.<model_class>`` objects, fp16."""
    common, yolo = types.ModuleType("models.common"), types.ModuleType("models.yolo")
    fakes: dict[type, type] = {}
    names = ("Conv", "Bottleneck", "C3", "SPP", "SPPF", "Focus", "Concat")
    classes = [(common, getattr(ascend_common, n)) for n in names]
    for module, real in [*classes, (yolo, Detect)]:
        fakes[real] = type(real.__name__, (real,), {"__module__": module.__name__})
        setattr(module, real.__name__, fakes[real])
    wrapper = type(model_class, (nn.Module,), {"__module__": "models.yolo"})
    setattr(yolo, model_class, wrapper)
    monkeypatch.setitem(sys.modules, "models", types.ModuleType("models"))
    monkeypatch.setitem(sys.modules, "models.common", common)
    monkeypatch.setitem(sys.modules, "models.yolo", yolo)
    ckpt = {"epoch": -1, "best_fitness": np.array([0.5]), "date": "2022-02-22", "opt": {"imgsz": 512}}
    for key, src in models.items():
        src = copy.deepcopy(src).half()
        for m in src.modules():
            if type(m) in fakes:
                m.__class__ = fakes[type(m)]
        src.detect.stride = torch.tensor(src.strides)
        pickled = wrapper()
        pickled.model = nn.Sequential(*src.model)
        pickled.yaml, pickled.stride = cfg, torch.tensor(src.strides)
        pickled.names = dict(enumerate(src.names)) if names_as_dict else list(src.names)
        ckpt[key] = pickled
    torch.save(ckpt, path)
    return path


def _perturbed(model: YOLOv5, seed: int) -> YOLOv5:
    g = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(model)
    for p in out.parameters():
        p.data += torch.randn(p.shape, generator=g) * 0.01
    return out


def test_v5_focus_checkpoint_imports_and_prefers_ema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = read_yaml("yolov5s-v5")
    cfg.update(depth_multiple=0.33, width_multiple=0.125, nc=4)
    base = YOLOv5.from_yaml(cfg, names=["w", "x", "y", "z"])
    raw, ema = _perturbed(base, 1), _perturbed(base, 2)
    path = _ultralytics_pickle(tmp_path / "v5.pt", monkeypatch, cfg, {"model": raw, "ema": ema})
    monkeypatch.delitem(sys.modules, "models.yolo")  # loading must not need the classes
    model, info = load_weights(path)
    assert info["weights"] == "ema" and info["img_size"] == 512 and model.names == ["w", "x", "y", "z"]
    assert type(model.model[0]).__name__ == "Focus" and type(model.model[8]).__name__ == "SPP"
    for key, value in ema.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        torch.testing.assert_close(model.state_dict()[key], expected, rtol=0, atol=0)


def test_v7_detection_model_with_name_dict_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = read_yaml("yolov5n")
    src = YOLOv5.from_yaml(cfg, nc=2, names=["cat", "dog"])
    src.detect.anchors.mul_(1.5)  # trained (auto-anchored) anchors travel with the weights
    path = _ultralytics_pickle(tmp_path / "v7.pt", monkeypatch, {**cfg, "nc": 2}, {"model": src},
                               model_class="DetectionModel", names_as_dict=True)
    model, info = load_weights(path)
    assert info["weights"] == "model" and model.names == ["cat", "dog"] and model.nc == 2
    np.testing.assert_allclose(model.anchors_px(), src.anchors_px(), rtol=1e-3)
    assert model.spec["anchors"][0][0] == pytest.approx([15.0, 19.5], rel=1e-3)


def test_pickled_model_without_yaml_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _ultralytics_pickle(tmp_path / "noyaml.pt", monkeypatch, None, {"model": YOLOv5.from_yaml("yolov5n")})
    with pytest.raises(AscendSlimError, match="lacks its yaml"):
        load_weights(path)


def test_pickled_model_with_mismatching_yaml_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _ultralytics_pickle(tmp_path / "other.pt", monkeypatch, read_yaml("yolov5s"),
                               {"model": YOLOv5.from_yaml("yolov5n")})
    with pytest.raises(AscendSlimError, match="do not fit"):
        load_weights(path)


# -- own format -------------------------------------------------------------------------------------------
def test_own_checkpoint_round_trips(official: tuple[YOLOv5, dict], tmp_path: Path) -> None:
    model = copy.deepcopy(official[0])
    model.history.append({"action": "train", "epochs": 3})
    path = save_checkpoint(tmp_path / "sub" / "own.pt", model, img_size=512)
    assert [p.name for p in path.parent.iterdir()] == ["own.pt"]  # no temp files left
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "ascend-slim" and raw["img_size"] == 512 and raw["names"] == list(COCO_CLASSES)
    assert raw["strides"] == [8.0, 16.0, 32.0] and raw["anchors"][2][0] == [116.0, 90.0]
    loaded, info = load_weights(path)
    assert info["source_format"] == "ascend-slim" and info["img_size"] == 512
    assert info["history"] == model.history and loaded.history == model.history
    assert loaded.spec == model.spec
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), loaded(x)):
            assert torch.equal(a, b)


def test_pruned_fused_checkpoint_rebuilds_without_yaml(tmp_path: Path) -> None:
    spec = YOLOv5.from_yaml("yolov5n").spec
    spec["layers"][4].update(cv1=3, cv2=1, m=[{"cv1": 1, "cv2": 3}, {"cv1": 2, "cv2": 3}])
    model = YOLOv5.from_spec(spec).eval().fuse()
    loaded, _ = load_weights(save_checkpoint(tmp_path / "pruned.pt", model))
    assert loaded.fused and loaded.model[4].m[1].cv1.conv.weight.shape == (2, 3, 1, 1)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), loaded(x)))


# -- class remap ------------------------------------------------------------------------------------------
def test_coco_to_voc_remap_keeps_scores_exactly(official: tuple[YOLOv5, dict], tmp_path: Path) -> None:
    coco = official[0].eval()
    voc = remap_classes(coco, VOC_CLASSES)
    assert voc.names == list(VOC_CLASSES) and voc.nc == 20
    assert voc.history[-1]["action"] == "remap_classes" and voc.history[-1]["to_names"] == list(VOC_CLASSES)
    assert coco.nc == 80 and len(coco.history) == 1  # the source model is untouched
    x = torch.rand(1, 3, 96, 128)
    idx = class_map(COCO_CLASSES, VOC_CLASSES)
    with torch.no_grad():
        for a, b in zip(coco(x), voc(x)):
            assert torch.equal(b[..., :5], a[..., :5])
            assert torch.equal(b[..., 5:], a[..., [5 + i for i in idx]])
    loaded, info = load_weights(save_checkpoint(tmp_path / "voc.pt", voc))
    assert loaded.names == list(VOC_CLASSES) and [h["action"] for h in info["history"]] == ["import", "remap_classes"]


def test_remap_to_unknown_class_is_refused(official: tuple[YOLOv5, dict]) -> None:
    with pytest.raises(AscendSlimError, match="unicorn"):
        remap_classes(official[0], ["person", "unicorn"])
