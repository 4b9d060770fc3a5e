"""The plan's cache (plan/ of a slim run) is one unit: every file in it is tied to the settings it was made under
(measurements, the original's match records, candidate models), a folder made for other settings is refused as a
whole, damaged files give one line, and the settings hash the model actually measured (after a sparsity stage:
the sparsity-trained checkpoint)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ascend_slim.compound.measurement import SETTINGS_FILE, MeasurementCache, tie_folder
from ascend_slim.errors import AscendSlimError
from ascend_slim.evaluation.bootstrap import MatchTable
from ascend_slim.fileio import file_sha256

CONTEXT = {"weights": "abc", "selection": {"split": "val", "images": 8}}


def test_every_file_of_the_folder_is_tied_to_one_settings_key(tmp_path: Path) -> None:
    plan = tmp_path / "plan"
    key = tie_folder(plan, CONTEXT)
    assert json.loads((plan / SETTINGS_FILE).read_text())["key"] == key
    assert tie_folder(plan, json.loads(json.dumps(CONTEXT))) == key
    (plan / "models").mkdir()
    (plan / "models" / "320-c0.1-fp32.onnx").write_bytes(b"the old model's file")
    # new weights: refused as a whole, even after measurements.json is deleted (was: the old model's files and
    # match records reused for the new weights)
    with pytest.raises(AscendSlimError, match=rf"{plan} was made for other settings \(weights differ\): delete "
                                              rf"the whole folder {plan}"):
        tie_folder(plan, {**CONTEXT, "weights": "def"})
    (plan / SETTINGS_FILE).unlink()
    with pytest.raises(AscendSlimError, match=r"holds files but no record of the settings .*settings\.json missing"):
        tie_folder(plan, CONTEXT)
    (plan / SETTINGS_FILE).write_text("{not json")
    with pytest.raises(AscendSlimError, match=r"settings\.json is damaged \(JSONDecodeError\): delete the whole"):
        tie_folder(plan, CONTEXT)


def test_the_original_records_are_named_by_the_key_and_a_damaged_file_is_one_line(tmp_path: Path) -> None:
    cache = MeasurementCache(tmp_path / "plan" / "measurements.json", CONTEXT)
    other = MeasurementCache(tmp_path / "plan" / "measurements.json", {**CONTEXT, "weights": "def"})
    assert cache.reference_path != other.reference_path and cache.key in cache.reference_path.name
    assert cache.load_reference() is None
    table = MatchTable(["a", "b"], ["cat"], np.array([[1.0], [0.0]]), [np.array([0])], [np.array([True])])
    table.save(cache.reference_path)
    assert cache.load_reference().image_ids == ("a", "b")
    assert other.load_reference() is None  # records made under other settings are never read
    for damage in (b"", b"PK\x03\x04 not a zip", cache.reference_path.read_bytes()[:100]):
        cache.reference_path.write_bytes(damage)
        with pytest.raises(AscendSlimError, match=r"cached match records .* are damaged .*: delete the whole folder"):
            cache.load_reference()
    cache.path.parent.mkdir(exist_ok=True)
    cache.path.write_text('{"version": 1, "context": {}}')
    with pytest.raises(AscendSlimError, match=r"unreadable \(KeyError: .*delete the whole folder"):
        MeasurementCache(cache.path, CONTEXT)


def test_the_plan_settings_hash_the_model_measured(voc_root: Path, yolov5n_pt: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """After a sparsity stage the plan measures the sparsity-trained checkpoint: its hash is in the settings
    (was: config.weights', so new sparsity weights reused the old measurements)."""
    from train_helpers import voc_subset

    from ascend_slim.model.checkpoint import save_checkpoint
    from ascend_slim.model.yolo import YOLOv5
    from ascend_slim.recipes import slim as recipe
    from ascend_slim.recipes.slim import SLIM_STAGES, SlimConfig, SlimRun, TrainResult

    voc = voc_subset(tmp_path / "voc", voc_root, 4)
    ids = (voc_root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").read_text().split()[4:8]
    (voc / "VOC2007" / "ImageSets" / "Main" / "pick.txt").write_text("\n".join(ids) + "\n")
    seen = {}

    def sparsity(run: SlimRun) -> TrainResult:
        return TrainResult(str(save_checkpoint(run.path("sparse.pt"), YOLOv5.from_yaml("yolov5n", nc=20))), 1, {})

    def search(space, objective, score, latency, cache_path, context, **kwargs):
        seen.update(context)
        seen["reference"] = {**context["reference"], "reference": kwargs["reference"]}
        raise AscendSlimError("stop here")

    monkeypatch.setattr("ascend_slim.compound.search", search)
    stages = [replace(s, run=sparsity) if s.name == "sparsity" else s for s in SLIM_STAGES]
    train = replace(SlimConfig().train, train_split="subset", val_split="subset", workers=0)
    config = SlimConfig(weights=str(yolov5n_pt), classes="voc", data=str(voc), target_latency=0.5, max_drop=None,
                        img_size=160,
                        img_sizes=(96,), cuts=(), int8=False, select_split="pick", sparsity_epochs=1, train=train,
                        save_dir=str(tmp_path / "run"))
    with pytest.raises(AscendSlimError, match="stop here"):
        SlimRun.create(config, stages).run()
    assert seen["weights"] == file_sha256(tmp_path / "run" / "sparse.pt")[:16] != file_sha256(yolov5n_pt)[:16]
    # and its accuracy floor compares with the original weights, as evaluate and the report do (was: with the
    # sparsity-trained model)
    assert seen["reference"]["weights"] == file_sha256(yolov5n_pt)[:16]
    assert seen["reference"]["reference"] is not None
    assert recipe.SlimRun.resume(tmp_path / "run").model_checkpoint() == str(tmp_path / "run" / "sparse.pt")


def test_a_given_reference_is_what_the_floor_compares_with(tmp_path: Path) -> None:
    from test_compound import SPACE, Stub, stub_map, stub_table

    from ascend_slim.compound import Objective, search

    stub = Stub()
    worse = stub_map(SPACE.original) - 0.05  # the reference: 5 points below the search's own original
    result = search(SPACE, Objective(0.5, None), stub.score, stub.latency, tmp_path / "cache.json", {"m": 1},
                    resamples=200, progress=False, reference=lambda: stub_table(worse))
    assert result.original.delta.difference == pytest.approx(0.05, abs=1e-3)
    assert SPACE.original.key in stub.scored  # the original candidate is scored itself, not taken as the reference
