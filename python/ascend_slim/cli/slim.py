"""``ascend-slim slim``: sparsity training -> prune -> finetune (optionally distilled) -> eval -> ONNX -> Ascend bundle,
in one resumable run folder with a report."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .args import batch_size, channel_multiple, fraction, image_size, int_range

NAME = "slim"
HELP = "network slimming end to end: sparsity training, prune, finetune, eval, export, optional Ascend bundle"

epoch_count = int_range(0, 100_000)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..recipes.slim_config import SlimConfig

    d = SlimConfig()  # the recipe's defaults: the CLI and the library run the same recipe
    t = d.train
    p.add_argument("--weights", default=d.weights,
                   help="the model to slim: official YOLOv5 .pt or an ascend-slim checkpoint")
    p.add_argument("--classes", choices=("voc", "coco"), default=d.classes,
                   help="remap a COCO model to this class set first")
    p.add_argument("--data", default=d.data, help="a VOCdevkit folder or an Ultralytics data yaml")
    p.add_argument("--train-split", default=t.train_split,
                   help="training split (default: trainval for VOC, train for a yaml)")
    p.add_argument("--val-split", default=t.val_split, help="split the original and the result are evaluated on "
                   "(default: test for VOC, val for a yaml)")
    p.add_argument("--percent", type=fraction, default=d.percent,
                   help="prune this fraction of all channels (one global threshold)")
    p.add_argument("--target-latency", type=fraction, default=d.target_latency, metavar="R",
                   help="least pruning with onnxruntime CPU latency (1 thread, --img) at most R x the original's")
    p.add_argument("--round-to", type=channel_multiple, default=d.round_to,
                   help=f"round kept channel counts up to a multiple (8: CPU SIMD, 16: Ascend cube unit; default "
                   f"{d.round_to})")
    p.add_argument("--min-keep", type=fraction, default=d.min_keep, help="keep at least this fraction of every layer")
    p.add_argument("--no-fold-bias", dest="fold_bias", action="store_false", default=d.fold_bias,
                   help="drop removed channels' constant output instead of folding it into the next layers")
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
    p.add_argument("--distill-images", default=d.distill_images, metavar="DIR",
                   help="unlabelled images mixed into training, contributing the distillation term only")
    p.add_argument("--img", "--img-size", dest="img", type=image_size, default=d.img_size,
                   help=f"evaluation, export and latency size (default {d.img_size})")
    p.add_argument("--train-img", type=image_size, default=t.img_size or None,
                   help=f"training size (default {t.img_size or '--img'})")
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
        weights=args.weights, data=args.data, classes=args.classes, percent=args.percent,
        target_latency=args.target_latency, round_to=args.round_to, min_keep=args.min_keep, fold_bias=args.fold_bias,
        sparsity_epochs=args.sparsity_epochs, sparsity_rate=args.sparsity, sparsity_decay=args.sparsity_decay,
        sparsity_beta=args.sparsity_beta, finetune_epochs=args.finetune_epochs, distill=args.distill,
        distill_weight=args.distill_weight, distill_images=args.distill_images, img_size=args.img, train=train,
        deploy=args.deploy, soc=args.soc, save_dir=str(next_run_dir(args.project, args.name, args.exist_ok)))


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train: idle OpenMP threads sleep on a busy machine
    from ..recipes.slim import SlimRun

    if args.resume:
        folder = Path(args.project) / args.name if args.resume is True else Path(args.resume)
        run_ = SlimRun.resume(folder).run()
    else:
        run_ = SlimRun.create(config_from_args(args)).run()
    report = run_.result("report")
    m, lat = report.map["ap50_voc07"], report.latency
    print(f"mAP@0.5 (VOC07) {m['original']:.4f} -> {m['final']:.4f} ({m['change_points']:+.2f} points); "
          f"onnxruntime {lat['1 thread']['speedup']:.2f}x faster on 1 thread, {lat['all cores']['speedup']:.2f}x "
          f"on all cores")
    print(f"done: {run_.path('final.pt')}, {run_.path('final.onnx')}, report {report.report}")
    return 0
