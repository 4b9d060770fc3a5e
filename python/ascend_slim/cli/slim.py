"""``ascend-slim slim``: plan input size x channel cut x precision by measurement, then prune, reconstruct,
(optionally) finetune, export, quantize, evaluate, time and deploy the choice, in one resumable run folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .args import batch_size, channel_multiple, float_range, fraction, image_size, int_range

NAME = "slim"
HELP = "compound slimming: choose input size, channel cut and INT8 by measurement, build and report the choice"

epoch_count = int_range(0, 100_000)
image_count = int_range(0, 100_000)
OBJECTIVE_FLAGS = ("target_latency", "max_drop", "confidence")  # what --resume may change (before the plan chose)
RUN_FLAGS = ("resume", "project", "name", "exist_ok")


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




def add_arguments(p: argparse.ArgumentParser, **overrides: object) -> None:
    """The flags; their defaults are ``SlimConfig(**overrides)``'s (the CLI and the library run one recipe)."""
    from ..recipes.slim_config import IMPORTANCE_CRITERIA, LATENCY_MODELS, SlimConfig
    from ..runtime.factory import RUNTIMES

    d = SlimConfig(**overrides)
    t = d.train
    p.add_argument("--weights", default=d.weights,
                   help="the model to slim: official YOLOv5 .pt or an ascend-slim checkpoint")
    p.add_argument("--classes", choices=("voc", "coco"), default=d.classes,
                   help="remap a COCO model to this class set first")
    p.add_argument("--data", default=d.data, help="a VOCdevkit folder or an Ultralytics data yaml")
    p.add_argument("--train-split", default=t.train_split,
                   help="training split: unlabelled images for reconstruction and calibration, and the training "
                   "stages' labels (default: trainval for VOC, train for a yaml)")
    p.add_argument("--val-split", default=t.val_split, help="split the original and the result are evaluated on "
                   "once at the end (default: test for VOC, val for a yaml); never used to choose")
    p.add_argument("--select-split", default=d.select_split, help="labelled split the plan scores candidates on "
                   "(default: the training split when nothing is trained, else val; test is refused)")
    p.add_argument("--target-latency", type=_budget, default=d.target_latency, metavar="R",
                   help=f"the plan's latency budget: at most R x the original's latency at --img (default "
                   f"{d.target_latency}; 0.33 = 3x faster; none: no budget)")
    p.add_argument("--max-drop", type=float_range(0.0, 100.0, "mAP points"), default=d.max_drop, metavar="P",
                   help="the plan's accuracy floor: lose at most P mAP@0.5 points on the selection split, at "
                   "--confidence (with --target-latency: both)")
    p.add_argument("--confidence", type=float, default=d.confidence,
                   help=f"one-sided confidence of the accuracy floor (paired bootstrap; default {d.confidence})")
    p.add_argument("--img-sizes", type=_sizes, default=d.img_sizes, metavar="SIZES",
                   help="input sizes to search: 320,384,448 or 256-640 (default: every multiple of 32 in 256-640)")
    p.add_argument("--cuts", type=_fractions, default=d.cuts, metavar="FRACTIONS",
                   help=f"channel-cut levels to search, uniform fractions of every layer "
                   f"(default {','.join(map(str, d.cuts)) or 'none'}; none: no cuts)")
    p.add_argument("--no-int8", dest="int8", action="store_false", default=d.int8,
                   help="search FP32 only (default: INT8 too, with the --runtime quantizer)")
    p.add_argument("--latency-model", choices=LATENCY_MODELS, default=d.latency_model,
                   help="measured: onnxruntime on 1 thread, side by side with the original (default); flops: conv "
                   "FLOPs (accelerators whose latency tracks them; an estimate, INT8 counted at half)")
    p.add_argument("--recon-images", type=image_count, default=d.recon_images,
                   help=f"unlabelled training images for reconstruction (default {d.recon_images})")
    p.add_argument("--recon-samples", type=int_range(1, 1_000_000), default=d.recon_samples,
                   help=f"output positions sampled per image and layer (default {d.recon_samples})")
    p.add_argument("--calib-images", type=image_count, default=d.calib_images,
                   help=f"unlabelled training images for INT8 calibration (default {d.calib_images})")
    p.add_argument("--importance", choices=IMPORTANCE_CRITERIA, default=d.importance,
                   help="channel importance inside each layer (default output: its contribution to the next "
                   "layers' outputs, from images)")
    p.add_argument("--round-to", type=channel_multiple, default=d.round_to,
                   help=f"round kept channel counts to a multiple (8: CPU SIMD, 16: Ascend cube unit; default "
                   f"{d.round_to})")
    p.add_argument("--runtime", choices=RUNTIMES, default=d.runtime,
                   help="the CPU runtime to slim for: the plan times candidates on it, INT8 uses its quantizer "
                   "(onnxruntime QDQ or OpenVINO NNCF) and the final model is in its format (default "
                   f"{d.runtime}; openvino needs the openvino extra)")
    p.add_argument("--latency-runs", type=int_range(1, 10_000), default=d.latency_runs,
                   help=f"rounds of each side-by-side latency measurement (default {d.latency_runs})")
    p.add_argument("--plan-only", action="store_true", default=d.plan_only,
                   help="measure and report the frontier (plan/plan.{png,md,json}); write no model")
    p.add_argument("--sparsity-epochs", type=epoch_count, default=d.sparsity_epochs,
                   help=f"sparsity-training epochs (default {d.sparsity_epochs}; 0: none)")
    p.add_argument("--sparsity", "--sr", dest="sparsity", type=float, default=d.sparsity_rate, metavar="SR",
                   help=f"L1 rate on BN gammas per optimiser step (default {d.sparsity_rate})")
    p.add_argument("--sparsity-decay", type=fraction, default=d.sparsity_decay,
                   help="SR falls linearly by this fraction")
    p.add_argument("--sparsity-beta", type=float, default=d.sparsity_beta, metavar="K",
                   help="also K x SR x sign(beta) on BN biases")
    p.add_argument("--finetune-epochs", type=epoch_count, default=d.finetune_epochs,
                   help=f"finetuning epochs after pruning (default {d.finetune_epochs}; 0: none)")
    p.add_argument("--distill", action="store_true", default=d.distill,
                   help="distil from the unpruned model in both training stages")
    p.add_argument("--distill-weight", type=float, default=d.distill_weight,
                   help=f"distillation term x this (default {d.distill_weight:g})")
    p.add_argument("--freeze-bn", action="store_true", default=d.freeze_bn,
                   help="finetune with BatchNorm statistics frozen (small or mosaic batches cannot shift them)")
    p.add_argument("--distill-images", default=d.distill_images, metavar="DIR",
                   help="unlabelled images mixed into training, contributing the distillation term only")
    p.add_argument("--img", "--img-size", dest="img", type=image_size, default=d.img_size,
                   help=f"the original's input size, the reference for latency and accuracy (default {d.img_size})")
    p.add_argument("--train-img", type=image_size, default=t.img_size or None,
                   help="training size of the training stages (default: the chosen input size)")
    p.add_argument("--batch-size", type=batch_size, default=t.batch_size)
    p.add_argument("--optimizer", choices=("SGD", "Adam", "AdamW"), default=t.optimizer)
    p.add_argument("--adam", dest="optimizer", action="store_const", const="Adam", help="same as --optimizer Adam")
    p.add_argument("--hyp", help="YOLOv5 hyperparameter yaml for both training stages (default hyp.scratch-low "
                   "with warmup_bias_lr 0)")
    p.add_argument("--cos-lr", action="store_true", default=t.cos_lr,
                   help="cosine instead of linear learning-rate decay")
    p.add_argument("--device", default=t.device, help=f"cpu or cuda:N (default {t.device})")
    p.add_argument("--workers", type=int_range(0, 64), default=t.workers,
                   help=f"data loader processes (default {t.workers})")
    p.add_argument("--seed", type=int, default=t.seed)
    p.add_argument("--deploy", default=d.deploy, metavar="DIR",
                   help="also write the Ascend 310 bundle of the result here")
    p.add_argument("--soc", default=d.soc, help="ATC --soc_version for --deploy")
    project, name = Path(d.save_dir).parent, Path(d.save_dir).name
    p.add_argument("--project", default=str(project), help=f"runs are saved to project/name (default {project})")
    p.add_argument("--name", default=name, help=f"run name (default {name}); {name}2, {name}3, ... when it exists")
    p.add_argument("--exist-ok", action="store_true", help="reuse project/name when it holds no slim run")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue a run, skipping finished stages (default: project/name)")


def config_from_args(args: argparse.Namespace):
    """The :class:`~ascend_slim.recipes.slim.SlimConfig` the flags describe (not validated yet)."""
    from dataclasses import replace

    from ..recipes.slim_config import SlimConfig
    from ..train.builder import next_run_dir
    from ..train.hyp import load_hyp

    defaults = SlimConfig()
    train = replace(defaults.train, train_split=args.train_split, val_split=args.val_split,
                    img_size=args.train_img or defaults.train.img_size, batch_size=args.batch_size,
                    optimizer=args.optimizer, cos_lr=args.cos_lr, device=args.device, workers=args.workers,
                    seed=args.seed, hyp=load_hyp(args.hyp) if args.hyp else defaults.train.hyp)
    return SlimConfig(
        weights=args.weights, data=args.data, classes=args.classes, target_latency=args.target_latency,
        max_drop=args.max_drop, confidence=args.confidence, img_sizes=tuple(args.img_sizes), cuts=tuple(args.cuts),
        int8=args.int8, latency_model=args.latency_model, select_split=args.select_split,
        recon_images=args.recon_images, recon_samples=args.recon_samples, calib_images=args.calib_images,
        importance=args.importance, round_to=args.round_to, plan_only=args.plan_only,
        sparsity_epochs=args.sparsity_epochs, sparsity_rate=args.sparsity, sparsity_decay=args.sparsity_decay,
        sparsity_beta=args.sparsity_beta, finetune_epochs=args.finetune_epochs, distill=args.distill,
        distill_weight=args.distill_weight, distill_images=args.distill_images, freeze_bn=args.freeze_bn,
        img_size=args.img, train=train,
        deploy=args.deploy, soc=args.soc, latency_runs=args.latency_runs, runtime=args.runtime,
        save_dir=str(next_run_dir(args.project, args.name, args.exist_ok)))


def _resumed(args: argparse.Namespace):
    """The run ``--resume`` names, aiming at a new objective when one is given; any other changed flag is refused
    (the run's settings are in its slim.json)."""
    from ..errors import AscendSlimError
    from ..recipes.slim import SlimRun

    defaults = vars(_parser().parse_args([]))
    changed = sorted(k for k, v in vars(args).items() if k in defaults and v != defaults[k])
    fixed = [k for k in changed if k not in OBJECTIVE_FLAGS + RUN_FLAGS]
    if fixed:
        names = ", ".join("--" + k.replace("_", "-") for k in fixed)
        raise AscendSlimError(f"{names} cannot change when resuming (the run's settings are in its slim.json): "
                              "drop them, or start a new run")
    folder = Path(args.project) / args.name if args.resume is True else Path(args.resume)
    run = SlimRun.resume(folder)
    if any(k in OBJECTIVE_FLAGS for k in changed):
        run = run.with_objective(args.target_latency, args.max_drop, args.confidence)
    return run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    return p


def _print_plan(run) -> None:
    plan = run.result("plan")
    print(f"plan: {plan.message}; {plan.scored} candidates scored, {plan.cpu_seconds / 60:.1f} CPU min")
    for step in plan.contributions:
        print(f"  {step['step']:14s} {step['key']:16s} {step['speedup']:.2f}x  selection mAP@0.5 {step['map50']:.4f}")
    print(f"frontier and every candidate: {plan.report}")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train: idle OpenMP threads sleep on a busy machine
    from ..fileio import check_outputs
    from ..recipes.slim import SlimRun

    if args.resume:
        run_ = _resumed(args).run()
    else:
        config = config_from_args(args)
        check_outputs([("--weights", args.weights), ("--data", args.data), ("--hyp", args.hyp),
                       ("--distill-images", args.distill_images)],
                      folders=[("--project/--name", config.save_dir), ("--deploy", args.deploy)])
        run_ = SlimRun.create(config).run()
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
