"""The slim run folder's reliability, with the recipe's work replaced by cheap stand-ins (the real stages are
tested in test_slim.py): folders created exclusively, --deploy kept apart from the run and its inputs (at the
start and at the deploy stage), resume that honours exactly the flags given, plan-only runs that resume and
build, relocatable run folders, damaged records and splits refused up front."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from train_helpers import voc_subset

from ascend_slim.cli import main
from ascend_slim.errors import AscendSlimError
from ascend_slim.fileio import claim_run_dir
from ascend_slim.model.checkpoint import save_checkpoint
from ascend_slim.model.yolo import YOLOv5
from ascend_slim.recipes import slim as recipe
from ascend_slim.recipes.slim import (
    SLIM_STAGES,
    ExportResult,
    LatencyResult,
    MapResult,
    PlanResult,
    ReportResult,
    SlimConfig,
    SlimRun,
)


@pytest.fixture(scope="module")
def voc8(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 trainval images as split ``subset``, the next 8 as ``pick``, and ``pickcopy``: ``pick``'s ids again."""
    folder = voc_subset(tmp_path_factory.mktemp("voc8"), voc_root, 8)
    ids = (voc_root / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").read_text().split()[8:16]
    for name in ("pick", "pickcopy"):
        (folder / "VOC2007" / "ImageSets" / "Main" / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return folder


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """The recipe with stand-in work (a plan that chooses 96 px when given an objective, files written where the
    real stages write them, the real deploy stage); returns the log of what ran."""
    log: list = []

    def plan(run: SlimRun) -> PlanResult:
        c, objective = run.config, run.config.objective
        log.append(("plan", (c.target_latency, c.max_drop, c.confidence), run.config.plan_only))
        run.path("plan").mkdir(exist_ok=True)
        run.path("plan/plan.md").write_text("plan\n")
        chosen = {"img_size": 96, "cut": 0.0, "precision": "fp32"} if objective.given else None
        return PlanResult(chosen, True if chosen else None, "ok", 3, 3, 1.0, str(run.path("plan/plan.md")), [])

    def export(run: SlimRun) -> ExportResult:
        log.append("export")
        save_checkpoint(run.path("final.pt"), YOLOv5.from_yaml("yolov5n", nc=20), img_size=96)
        for name in ("final.onnx", "original.onnx"):
            run.path(name).write_text(f"{name} of {run.dir.name}\n")
        return ExportResult(str(run.path("final.pt")), str(run.path("final.onnx")), str(run.path("original.onnx")),
                            96)

    def evaluate(run: SlimRun) -> MapResult:
        log.append(("evaluate", Path(recipe._models(run)["final"]).read_text()))
        return MapResult("subset", 8, {"original": 160, "final": 96}, {"map50": 0.5}, {"map50": 0.4})

    def latency(run: SlimRun) -> LatencyResult:
        return LatencyResult(1, {}, {})

    def report(run: SlimRun) -> ReportResult:
        run.path("report.md").write_text("report\n")
        return ReportResult(str(run.path("report.md")), {"ap50_voc07": {"original": 0.5, "final": 0.4,
                                                                        "change_points": -10.0}},
                            {"1 thread": {"speedup": 2.0}, "all cores": {"speedup": 2.0}})

    works = {"plan": plan, "export": export, "evaluate": evaluate, "latency": latency, "report": report}
    monkeypatch.setattr(recipe, "SLIM_STAGES", tuple(replace(s, run=works.get(s.name, s.run)) for s in SLIM_STAGES))
    return log


CONFIDENCE = SlimConfig().confidence  # the default the runs keep


def _argv(voc8: Path, yolov5n_pt: Path, project: Path, *extra: str, command: str = "slim") -> list[str]:
    return [command, "--weights", str(yolov5n_pt), "--classes", "voc", "--data", str(voc8), "--train-split", "subset",
            "--val-split", "subset", "--select-split", "pick", "--img", "160", "--img-sizes", "96,128", "--cuts",
            "none", "--no-int8", "--latency-runs", "2", "--project", str(project), "--name", "r", *extra]


def _config(voc8: Path, yolov5n_pt: Path, save_dir: Path, **overrides) -> SlimConfig:
    train = replace(SlimConfig().train, train_split="subset", val_split="subset")
    options = dict(weights=str(yolov5n_pt), classes="voc", data=str(voc8), target_latency=0.5, img_size=160,
                   img_sizes=(96,), cuts=(), int8=False, select_split="pick", train=train, save_dir=str(save_dir))
    return SlimConfig(**{**options, **overrides})


def _state(folder: Path) -> dict:
    return json.loads((folder / "slim.json").read_text())


def test_resume_honours_exactly_the_flags_given(voc8: Path, yolov5n_pt: Path, tmp_path: Path, calls: list,
                                                capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "r"
    assert main(_argv(voc8, yolov5n_pt, tmp_path, "--target-latency", "0.1", "--max-drop", "none")) == 0
    assert calls[0] == ("plan", (0.1, None, CONFIDENCE), False)
    # given: honoured, whatever the default (was: a value equal to the default counted as "not given")
    assert main(["slim", "--resume", str(folder), "--target-latency", "0.3"]) == 0
    assert calls[-3] == ("plan", (0.3, None, CONFIDENCE), False)
    assert calls[-2] == "export"  # a new objective after the plan re-chooses, and the choice is built again
    # --max-drop alone keeps the run's budget (was: reset to the default)
    assert main(["slim", "--resume", str(folder), "--max-drop", "50"]) == 0
    assert calls[-3][1] == (0.3, 50.0, CONFIDENCE)
    assert main(["slim", "--resume", str(folder), "--confidence", "0.95"]) == 0
    assert calls[-3][1] == (0.3, 50.0, 0.95)
    done = len(calls)
    # a setting given with the run's own value changes nothing; another value is refused, naming the flag
    assert main(["slim", "--resume", str(folder), "--img", "160", "--train-split", "subset"]) == 0
    assert len(calls) == done
    capsys.readouterr()
    for flag, value in (("--img", "320"), ("--train-img", "320"), ("--cuts", "0.1"), ("--no-int8", None)):
        code = main(["slim", "--resume", str(folder), flag, *([value] if value else [])])
        err = capsys.readouterr().err
        if flag == "--no-int8":  # the run searched FP32 only already: the same value
            assert code == 0
            continue
        assert code == 1 and f"{flag} cannot change when resuming" in err, err
    config = _state(folder)["config"]
    assert (config["target_latency"], config["max_drop"], config["confidence"], config["img_size"]) == \
        (0.3, 50.0, 0.95, 160)


def test_a_plan_only_run_resumes_and_builds_when_given_an_objective(voc8: Path, yolov5n_pt: Path, tmp_path: Path,
                                                                    calls: list) -> None:
    folder = tmp_path / "r"
    assert main(_argv(voc8, yolov5n_pt, tmp_path, command="plan")) == 0
    assert calls == [("plan", (None, None, CONFIDENCE), True)]
    assert main(["plan", "--resume", str(folder)]) == 0  # was: refused, "--plan-only cannot change"
    assert len(calls) == 1  # nothing left to do
    # `plan --resume` with an objective re-chooses from the measurements and still builds nothing
    assert main(["plan", "--resume", str(folder), "--target-latency", "0.5"]) == 0
    assert calls[-1] == ("plan", (0.5, None, CONFIDENCE), True)
    assert "export" not in _state(folder)["stages"]
    # `slim --resume` with an objective builds it (was: "has finished its plan", or exit 0 building nothing)
    assert main(["slim", "--resume", str(folder), "--target-latency", "0.4"]) == 0
    assert calls[-3:] == [("plan", (0.4, None, CONFIDENCE), False), "export",
                          ("evaluate", "final.onnx of r\n")]
    assert (folder / "final.pt").is_file() and list(_state(folder)["stages"])[-1] == "report"


def test_run_folders_are_claimed_exclusively(voc8: Path, yolov5n_pt: Path, tmp_path: Path, calls: list,
                                             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    assert claim_run_dir(tmp_path / "a") == (tmp_path / "a", True)
    assert claim_run_dir(tmp_path / "a", increment=True) == (tmp_path / "a2", True)
    assert claim_run_dir(tmp_path / "a", exist_ok=True) == (tmp_path / "a", False)
    with pytest.raises(AscendSlimError, match="exists"):
        claim_run_dir(tmp_path / "a")
    # two runs that chose one free name before either made it (as two processes started together do): the
    # folder is made without exist-ok, so the second takes the next name (was: both ran in r)
    monkeypatch.setattr("ascend_slim.train.builder.next_run_dir", lambda project, name, exist_ok: Path(project) / name)
    for _ in range(2):
        assert main(_argv(voc8, yolov5n_pt, tmp_path / "p", "--target-latency", "0.5")) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["r", "r2"]
    assert _state(tmp_path / "p" / "r2")["stages"]["export"]["result"]["final_pt"] == "final.pt"
    # --exist-ok into a folder that holds a run: refused (was: one run's results overwrote the other's)
    before = (tmp_path / "p" / "r" / "slim.json").read_bytes()
    capsys.readouterr()
    assert main(_argv(voc8, yolov5n_pt, tmp_path / "p", "--target-latency", "0.9", "--exist-ok")) == 1
    assert "already holds a slim run" in capsys.readouterr().err
    assert (tmp_path / "p" / "r" / "slim.json").read_bytes() == before
    # --exist-ok into an existing folder without a run is fine, and a failing start leaves the folder as it was
    (tmp_path / "q" / "r").mkdir(parents=True)
    assert main(_argv(voc8, yolov5n_pt, tmp_path / "q", "--target-latency", "0.5", "--exist-ok")) == 0
    with pytest.raises(AscendSlimError, match="already holds"):
        SlimRun.create(_config(voc8, yolov5n_pt, tmp_path / "q" / "r"), exist_ok=True)


def test_deploy_is_kept_apart_from_the_run_and_checked_again_at_its_stage(
        voc8: Path, yolov5n_pt: Path, tmp_path: Path, calls: list, capsys: pytest.CaptureFixture) -> None:
    project = tmp_path / "dl1"
    for deploy, relation in ((project, "holds the run folder"), (project / "r", "also --project/--name"),
                             (project / "r" / "bundle", "lies inside the run folder"), (voc8, "is the input --data"),
                             (voc8 / "VOC2007" / "out", "lies inside --data")):
        code = main(_argv(voc8, yolov5n_pt, project, "--target-latency", "0.5", "--deploy", str(deploy)))
        err = capsys.readouterr().err
        assert code == 1 and f"--deploy {deploy} " in err and relation.split()[0] in err, err
        assert not (project / "r").exists()
    # a bundle folder written into after the start is not replaced at the deploy stage
    bundle = tmp_path / "bundle"
    run = SlimRun.create(_config(voc8, yolov5n_pt, tmp_path / "run", deploy=str(bundle)))
    bundle.mkdir()
    (bundle / "theirs.txt").write_text("someone else's")
    with pytest.raises(AscendSlimError, match=r"not empty any more .* did not create it"):
        run.run()
    assert (bundle / "theirs.txt").read_text() == "someone else's"
    (bundle / "theirs.txt").unlink()
    run = SlimRun.resume(tmp_path / "run").run()
    assert (bundle / "README.txt").is_file()
    # this run's own bundle is rebuilt after a new objective; a copy of the run does not own it
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "run", copy)
    SlimRun.resume(tmp_path / "run").with_objective(0.6, None, 0.9).run()
    with pytest.raises(AscendSlimError, match="did not create it"):
        SlimRun.resume(copy).with_objective(0.7, None, 0.9).run()


def test_a_run_folder_is_relocatable(voc8: Path, yolov5n_pt: Path, tmp_path: Path, calls: list,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(yolov5n_pt, tmp_path / "w.pt")
    assert main(_argv(voc8, Path("w.pt"), Path("runs"), "--target-latency", "0.5")) == 0
    state = _state(tmp_path / "runs" / "r")
    assert state["config"]["weights"] == str(tmp_path / "w.pt")  # inputs absolute (was: relative to the cwd)
    assert state["stages"]["export"]["result"]["final_onnx"] == "final.onnx"  # outputs relative to the run
    # a copy evaluates its own files (was: the original folder's final.onnx)
    shutil.copytree(tmp_path / "runs" / "r", tmp_path / "copy")
    copy = SlimRun.resume(tmp_path / "copy")
    assert copy.result("export").final_onnx == str(tmp_path / "copy" / "final.onnx")
    copy.records.pop("evaluate")
    copy.run_stage(next(s for s in copy.stages if s.name == "evaluate"))
    assert calls[-1] == ("evaluate", "final.onnx of r\n") and (tmp_path / "copy" / "final.onnx").read_text() == \
        "final.onnx of r\n"
    (tmp_path / "copy" / "final.onnx").write_text("the copy's\n")
    copy.records.pop("evaluate")
    copy.run_stage(next(s for s in copy.stages if s.name == "evaluate"))
    assert calls[-1] == ("evaluate", "the copy's\n")
    # a moved run resumes, from anywhere
    os.rename(tmp_path / "runs" / "r", tmp_path / "moved")
    monkeypatch.chdir(voc8)
    assert main(["slim", "--resume", str(tmp_path / "moved"), "--target-latency", "0.6"]) == 0
    assert SlimRun.resume(tmp_path / "moved").result("report").report == str(tmp_path / "moved" / "report.md")


def test_damaged_records_and_bad_splits_are_refused_up_front(voc8: Path, yolov5n_pt: Path, tmp_path: Path,
                                                             calls: list) -> None:
    run = SlimRun.create(_config(voc8, yolov5n_pt, tmp_path / "run", plan_only=True)).run()
    state = _state(run.dir)
    del state["stages"]["plan"]["result"]["contributions"]
    (run.dir / "slim.json").write_text(json.dumps(state))
    with pytest.raises(AscendSlimError, match=r"slim\.json: the record of stage 'plan' is damaged .*contributions"):
        SlimRun.resume(run.dir)
    # the selection split may not be the evaluation split, by name or by content
    for select, val in (("pick", "pick"), ("pickcopy", "pick")):
        config = _config(voc8, yolov5n_pt, tmp_path / "x", select_split=select,
                         train=replace(SlimConfig().train, train_split="subset", val_split=val))
        with pytest.raises(AscendSlimError, match=f"selection split {select} shares 8 image.* evaluation split"):
            SlimRun.create(config)
    with pytest.raises(AscendSlimError, match="nosuch"):
        SlimRun.create(_config(voc8, yolov5n_pt, tmp_path / "x",
                               train=replace(SlimConfig().train, train_split="subset", val_split="nosuch")))
    assert not (tmp_path / "x").exists()


def test_export_writes_the_plan_into_final_pt_only(voc8: Path, yolov5n_pt: Path, tmp_path: Path) -> None:
    """The plan goes into final.pt's history, not into the cached original (was: appended to it, so
    original.onnx, exported next, claimed the plan too)."""
    import onnx

    from ascend_slim.meta import ModelMeta
    from ascend_slim.model.checkpoint import load_weights
    from ascend_slim.recipes.slim import Stage

    run = SlimRun.create(_config(voc8, yolov5n_pt, tmp_path / "run"))
    chosen = {"img_size": 96, "cut": 0.0, "precision": "fp32"}
    run.run_stage(Stage("plan", lambda run: PlanResult(chosen, True, "ok", 1, 1, 1.0, "plan.md", []), PlanResult))
    exported = recipe.export_stage(run)
    assert not any(h["action"] == "slim_plan" for h in run.original_model().history)
    assert any(h["action"] == "slim_plan" and h["chosen"] == chosen for h in load_weights(exported.final_pt)[1]
               ["history"])
    props = {p.key: p.value for p in onnx.load(exported.original_onnx).metadata_props}
    assert not any(h["action"] == "slim_plan" for h in ModelMeta.from_props(props).history)
