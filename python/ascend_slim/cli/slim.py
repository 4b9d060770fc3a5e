"""``ascend-slim slim``: plan input size x channel cut x precision by measurement, then prune, reconstruct,
(optionally) finetune, export, quantize, evaluate, time and deploy the choice, in one resumable run folder."""

from __future__ import annotations

import argparse
import os
from argparse import SUPPRESS
from pathlib import Path

from .args import batch_size, channel_multiple, fraction, image_size, int_range

NAME = "slim"
HELP = "compound slimming: choose input size, channel cut and INT8 by measurement, build and report the choice"

epoch_count = int_range(0, 100_000)
image_count = int_range(0, 100_000)
# flag dest -> the SlimConfig setting it sets ("train." prefix: a TrainConfig setting)
SETTINGS = {"weights": "weights", "classes": "classes", "data": "data", "train_split": "train.train_split",
            "val_split": "train.val_split", "select_split": "select_split", "target_latency": "target_latency",
            "max_drop": "max_drop", "confidence": "confidence", "folds": "folds", "img_sizes": "img_sizes",
            "cuts": "cuts", "int8": "int8", "latency_model": "latency_model", "recon_images": "recon_images",
            "recon_samples": "recon_samples", "calib_images": "calib_images", "importance": "importance",
            "round_to": "round_to", "runtime": "runtime", "latency_runs": "latency_runs", "plan_only": "plan_only",
            "sparsity_epochs": "sparsity_epochs", "sparsity": "sparsity_rate", "sparsity_decay": "sparsity_decay",
            "sparsity_beta": "sparsity_beta", "finetune_epochs": "finetune_epochs", "distill": "distill",
            "distill_weight": "distill_weight", "freeze_bn": "freeze_bn", "distill_images": "distill_images",
            "img": "img_size", "train_img": "train.img_size", "batch_size": "train.batch_size",
            "optimizer": "train.optimizer", "hyp": "train.hyp", "cos_lr": "train.cos_lr", "device": "train.device",
            "workers": "train.workers", "seed": "train.seed", "deploy": "deploy", "soc": "soc"}


def _sizes(text: str) -> tuple[int, ...]:
    """``--img-sizes``: comma-separated sizes, or LOW-HIGH for every multiple of 32 in the range."""
    from ..compound import default_sizes
    from ..errors import AscendSlimError

    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-"))
            return default_sizes(low, high)
        return tuple(int(part) for part in text.split(","))
    except (ValueError, AscendSlimError) as exc:
        raise argparse.ArgumentTypeError(f"expected sizes like 320,384,448 or a range like 256-640 ({exc})") from None


def _fractions(text: str) -> tuple[float, ...]:
    """``--cuts``: comma-separated channel fractions in [0, 1), or none."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fractions like 0.05,0.1 (or none), got {text!r}") from None
    if any(not 0.0 <= v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"cut fractions must lie in [0, 1), got {text}")
    return values


def _budget(text: str) -> float | None:
    """``--target-latency``: a ratio in (0, 1], or none (no latency budget: --max-drop alone)."""
    if text.strip().lower() == "none":
        return None
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a latency ratio in (0, 1] or none, got {text}")
    return value


def _drop(text: str) -> float | None:
    """``--max-drop``: mAP points in [0, 100], or none (no accuracy floor: --target-latency alone)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected mAP points like 1 (or none), got {text!r}") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"must be mAP points in [0, 100] or none, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser, **overrides: object) -> None:
    """The flags; their defaults are ``SlimConfig(**overrides)``'s (the CLI and the library run one recipe)."""
    from ..recipes.slim_config import IMPORTANCE_CRITERIA, LATENCY_MODELS, SlimConfig
    from ..runtime.factory import RUNTIMES

    d = SlimConfig(**overrides)
    t = d.train
    p.add_argument("--weights", default=SUPPRESS,
                   help="the model to slim: official YOLOv5 .pt or an ascend-slim checkpoint")
    p.add_argument("--classes", choices=("voc", "coco"), default=SUPPRESS,
                   help="remap a COCO model to this class set first")
    p.add_argument("--data", default=SUPPRESS, help="a VOCdevkit folder or an Ultralytics data yaml")
    p.add_argument("--train-split", default=SUPPRESS,
                   help="training split: unlabelled images for reconstruction and calibration, and the training "
                   "stages' labels (default: trainval for VOC, train for a yaml)")
    p.add_argument("--val-split", default=SUPPRESS, help="split the original and the result are evaluated on "
                   "once at the end (default: test for VOC, val for a yaml); never used to choose")
    p.add_argument("--select-split", default=SUPPRESS, help="labelled split the plan scores candidates on "
                   "(default: the training split when nothing is trained, else val; test is refused)")
    p.add_argument("--target-latency", type=_budget, default=SUPPRESS, metavar="R",
                   help=f"a latency budget on top of the accuracy floor: at most R x the original's latency at --img "
                   f"(default {d.target_latency}; 0.33 = 3x faster; none: no budget)")
    p.add_argument("--max-drop", type=_drop, default=SUPPRESS, metavar="P",
                   help=f"the accuracy floor: the fastest candidate whose cross-fitted selection mAP@0.5 loses at "
                   f"most P points (default {d.max_drop}; none: no floor, needs --target-latency)")
    p.add_argument("--confidence", type=float, default=SUPPRESS,
                   help=f"hold the floor against the one-sided paired-bootstrap lower bound at this confidence "
                   f"instead of the estimate (default {d.confidence}: the estimate)")
    p.add_argument("--folds", type=int_range(2, 10), default=SUPPRESS,
                   help=f"cross-fitting folds: no selection image scores a candidate fitted on it (default {d.folds})")
    p.add_argument("--img-sizes", type=_sizes, default=SUPPRESS, metavar="SIZES",
                   help="input sizes to search: 320,384,448 or 256-640 (default: every multiple of 32 in 256-640)")
    p.add_argument("--cuts", type=_fractions, default=SUPPRESS, metavar="FRACTIONS",
                   help=f"channel-cut levels to search, uniform fractions of every layer "
                   f"(default {','.join(map(str, d.cuts)) or 'none'}; none: no cuts)")
    p.add_argument("--no-int8", dest="int8", action="store_false", default=SUPPRESS,
                   help="search FP32 only (default: INT8 too, with the --runtime quantizer)")
    p.add_argument("--latency-model", choices=LATENCY_MODELS, default=SUPPRESS,
                   help="measured: onnxruntime on 1 thread, side by side with the original (default); flops: conv "
                   "FLOPs (accelerators whose latency tracks them; an estimate, INT8 counted at half)")
    p.add_argument("--recon-images", type=image_count, default=SUPPRESS,
                   help=f"unlabelled training images for reconstruction (default {d.recon_images})")
    p.add_argument("--recon-samples", type=int_range(1, 1_000_000), default=SUPPRESS,
                   help=f"output positions sampled per image and layer (default {d.recon_samples})")
    p.add_argument("--calib-images", type=image_count, default=SUPPRESS,
                   help=f"unlabelled training images for INT8 calibration (default {d.calib_images})")
    p.add_argument("--importance", choices=IMPORTANCE_CRITERIA, default=SUPPRESS,
                   help="channel importance inside each layer (default output: its contribution to the next "
                   "layers' outputs, from images; taylor: the YOLO loss's first-order change against the original's "
                   "own detections, from images)")
    p.add_argument("--round-to", type=channel_multiple, default=SUPPRESS,
                   help=f"round kept channel counts to a multiple (8: CPU SIMD, 16: Ascend cube unit; default "
                   f"{d.round_to}); a cut level counts the channels removed after rounding")
    p.add_argument("--runtime", choices=RUNTIMES, default=SUPPRESS,
                   help="the CPU runtime to slim for: the plan times candidates on it, INT8 uses its quantizer "
                   "(onnxruntime QDQ or OpenVINO NNCF) and the final model is in its format (default "
                   f"{d.runtime}; openvino needs the openvino extra)")
    p.add_argument("--latency-runs", type=int_range(1, 10_000), default=SUPPRESS,
                   help=f"rounds of each side-by-side latency measurement (default {d.latency_runs})")
    p.add_argument("--plan-only", action="store_true", default=SUPPRESS,
                   help="measure and report the frontier (plan/plan.{png,md,json}); write no model")
    p.add_argument("--sparsity-epochs", type=epoch_count, default=SUPPRESS,
                   help=f"sparsity-training epochs (default {d.sparsity_epochs}; 0: none)")
    p.add_argument("--sparsity", "--sr", dest="sparsity", type=float, default=SUPPRESS, metavar="SR",
                   help=f"L1 rate on BN gammas per optimiser step (default {d.sparsity_rate})")
    p.add_argument("--sparsity-decay", type=fraction, default=SUPPRESS,
                   help="SR falls linearly by this fraction")
    p.add_argument("--sparsity-beta", type=float, default=SUPPRESS, metavar="K",
                   help="also K x SR x sign(beta) on BN biases")
    p.add_argument("--finetune-epochs", type=epoch_count, default=SUPPRESS,
                   help=f"finetuning epochs after pruning (default {d.finetune_epochs}; 0: none)")
    p.add_argument("--distill", action="store_true", default=SUPPRESS,
                   help="distil from the unpruned model in both training stages")
    p.add_argument("--distill-weight", type=float, default=SUPPRESS,
                   help=f"distillation term x this (default {d.distill_weight:g})")
    p.add_argument("--freeze-bn", action="store_true", default=SUPPRESS,
                   help="finetune with BatchNorm statistics frozen (small or mosaic batches cannot shift them)")
    p.add_argument("--distill-images", default=SUPPRESS, metavar="DIR",
                   help="unlabelled images mixed into training, contributing the distillation term only")
    p.add_argument("--img", "--img-size", dest="img", type=image_size, default=SUPPRESS,
                   help=f"the original's input size, the reference for latency and accuracy (default {d.img_size})")
    p.add_argument("--train-img", type=image_size, default=SUPPRESS,
                   help="training size of the training stages (default: the chosen input size)")
    p.add_argument("--batch-size", type=batch_size, default=SUPPRESS)
    p.add_argument("--optimizer", choices=("SGD", "Adam", "AdamW"), default=SUPPRESS)
    p.add_argument("--adam", dest="optimizer", action="store_const", const="Adam", default=SUPPRESS,
                   help="same as --optimizer Adam")
    p.add_argument("--hyp", default=SUPPRESS, help="YOLOv5 hyperparameter yaml for both training stages (default "
                   "hyp.scratch-low with warmup_bias_lr 0)")
    p.add_argument("--cos-lr", action="store_true", default=SUPPRESS,
                   help="cosine instead of linear learning-rate decay")
    p.add_argument("--device", default=SUPPRESS, help=f"cpu or cuda:N (default {t.device})")
    p.add_argument("--workers", type=int_range(0, 64), default=SUPPRESS,
                   help=f"data loader processes (default {t.workers})")
    p.add_argument("--seed", type=int, default=SUPPRESS)
    p.add_argument("--deploy", default=SUPPRESS, metavar="DIR",
                   help="also write the Ascend 310 bundle of the result here")
    p.add_argument("--soc", default=SUPPRESS, help="ATC --soc_version for --deploy")
    project, name = Path(d.save_dir).parent, Path(d.save_dir).name
    p.add_argument("--project", default=str(project), help=f"runs are saved to project/name (default {project})")
    p.add_argument("--name", default=name, help=f"run name (default {name}); {name}2, {name}3, ... when it exists")
    p.add_argument("--exist-ok", action="store_true", help="reuse project/name when it holds no slim run")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue a run, skipping finished stages (default: project/name); flags given change the "
                   "objective (--target-latency, --max-drop, --confidence: the plan re-chooses from its "
                   "measurements) or are refused, flags not given keep the run's values")
    p.set_defaults(command_settings=overrides)  # this command's defaults (``plan``: plan_only, kept on resume)


def given_settings(args: argparse.Namespace) -> dict[str, object]:
    """The settings the flags given on the command line set (flags not given are absent: their defaults are
    ``argparse.SUPPRESS``), keyed as in :data:`SETTINGS`, values as the config holds them."""
    from ..train.hyp import load_hyp

    given = {SETTINGS[k]: v for k, v in vars(args).items() if k in SETTINGS}
    for key in ("img_sizes", "cuts"):
        if key in given:
            given[key] = tuple(given[key])
    if "train.hyp" in given:
        given["train.hyp"] = load_hyp(given["train.hyp"])
    return given


def _apply(config, settings: dict[str, object]):
    """``config`` (a SlimConfig) with ``settings`` (keys as in :data:`SETTINGS`) replaced."""
    from dataclasses import replace

    train = {k.removeprefix("train."): v for k, v in settings.items() if k.startswith("train.")}
    top = {k: v for k, v in settings.items() if not k.startswith("train.")}
    return replace(config, **top, train=replace(config.train, **train))


def config_from_args(args: argparse.Namespace):
    """The :class:`~ascend_slim.recipes.slim.SlimConfig` the flags describe (not validated yet): the command's
    defaults, then the flags given."""
    from ..recipes.slim_config import SlimConfig

    save_dir = str(Path(args.project) / args.name)
    return _apply(SlimConfig(**args.command_settings, save_dir=save_dir), given_settings(args))


def _flag_names() -> dict[str, str]:
    """SlimConfig setting (keys as in :data:`SETTINGS`) -> the flag that sets it (for messages)."""
    flags = {a.dest: a.option_strings[0] for a in _parser()._actions if a.option_strings}
    return {setting: flags[dest] for dest, setting in SETTINGS.items()}


def resumed_run(args: argparse.Namespace):
    """The run ``--resume`` names, going on with the flags given: a new objective is honoured (before or after
    the plan), a plan-only run given an objective by ``slim`` builds the model, and any other flag that would
    change the run's settings is refused (flags not given keep the run's values)."""
    from ..recipes.slim import OBJECTIVE_SETTINGS, SlimRun
    from ..recipes.slim_config import INPUT_PATHS

    folder = Path(args.project) / args.name if args.resume is True else Path(args.resume)
    run = SlimRun.resume(folder)
    given = given_settings(args)
    for key in INPUT_PATHS:  # the run keeps its inputs as absolute paths
        if given.get(key):
            given[key] = os.path.abspath(given[key])
    forced = {k: v for k, v in args.command_settings.items() if k == "plan_only"}  # `plan` never builds
    settings = {**forced, **given}
    if "plan_only" not in settings and any(k in given for k in OBJECTIVE_SETTINGS):
        settings["plan_only"] = False  # an objective given to `slim`: build the choice
    train = {k: v for k, v in settings.items() if k.startswith("train.")}
    changed_train = [k for k, v in train.items() if getattr(run.config.train, k.removeprefix("train.")) != v]
    names = _flag_names()
    if changed_train:
        from ..errors import AscendSlimError

        raise AscendSlimError(f"{', '.join(names[k] for k in changed_train)} cannot change when resuming (the "
                              "run's settings are in its slim.json): drop them, or start a new run")
    top = {k: v for k, v in settings.items() if not k.startswith("train.")}
    config = _apply(run.config, top)
    return run.with_settings(config, names=lambda name: names.get(name, name)) if config != run.config else run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    return p


def _print_plan(run) -> None:
    plan = run.result("plan")
    print(f"plan: {plan.message}; {plan.scored} candidates scored, {plan.cpu_seconds / 60:.1f} CPU min")
    if plan.curve:
        print("input size alone (FP32): size, speed-up, selection mAP@0.5, change in points [90 % interval]")
    for row in plan.curve:
        low, high = row["interval"]
        print(f"  {row['img_size']:4d} px  {row['speedup']:.2f}x  {row['map50']:.4f}  {100 * row['difference']:+.2f} "
              f"[{100 * low:+.2f}, {100 * high:+.2f}]")
    if plan.selection_estimate:
        e = plan.selection_estimate
        print(f"chosen: estimated change {100 * e['difference']:+.2f} points; corrected for choosing the best of many "
              f"{100 * e['corrected']:+.2f} [{100 * e['interval'][0]:+.2f}, {100 * e['interval'][1]:+.2f}]")
    if plan.latency_flag:
        print(f"flag: {plan.latency_flag}")
    for step in plan.contributions:
        print(f"  {step['step']:14s} {step['key']:16s} {step['speedup']:.2f}x  selection mAP@0.5 {step['map50']:.4f}")
    print(f"frontier and every candidate: {plan.report}")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train: idle OpenMP threads sleep on a busy machine
    from ..fileio import check_outputs
    from ..recipes.slim import SlimRun
    from ..train.builder import next_run_dir

    if args.resume:
        run_ = resumed_run(args).run()
    else:
        config = config_from_args(args)
        save_dir = next_run_dir(args.project, args.name, args.exist_ok)
        check_outputs([("--weights", config.weights), ("--data", config.data), ("--hyp", getattr(args, "hyp", None)),
                       ("--distill-images", config.distill_images)],
                      folders=[("--project/--name", save_dir), ("--deploy", config.deploy)])
        run_ = SlimRun.create(config, exist_ok=args.exist_ok, increment=not args.exist_ok).run()
    _print_plan(run_)
    report = run_.result("report")
    if report is None:  # plan only
        return 0
    m, lat = report.map["ap50_voc07"], report.latency
    print(f"mAP@0.5 (VOC07) on {run_.config.train.val_split} {m['original']:.4f} -> {m['final']:.4f} "
          f"({m['change_points']:+.2f} points); {run_.config.runtime} {lat['1 thread']['speedup']:.2f}x faster on 1 "
          f"thread, {lat['all cores']['speedup']:.2f}x on all cores")
    final = (run_.result("quantize") or run_.result("export")).final_onnx  # .onnx, or .xml for OpenVINO
    print(f"done: {run_.path('final.pt')}, {final}, report {report.report}")
    return 0
