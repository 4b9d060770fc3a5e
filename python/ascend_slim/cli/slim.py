"""``ascend-slim slim``: sparsity training -> prune -> finetune (optionally distilled) -> eval -> ONNX -> Ascend bundle,
in one resumable run folder with a report."""

from __future__ import annotations

import argparse
import os

from .args import batch_size, channel_multiple, fraction, image_size, int_range

NAME = "slim"
HELP = "network slimming end to end: sparsity training, prune, finetune, eval, export, optional Ascend bundle"

epoch_count = int_range(0, 100_000)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="the model to slim: official YOLOv5 .pt or an ascend-slim checkpoint")
    p.add_argument("--classes", choices=("voc", "coco"), default="", help="remap a COCO model to this class set first")
    p.add_argument("--data", help="a VOCdevkit folder or an Ultralytics data yaml")
    p.add_argument("--train-split", default="", help="training split (default: trainval for VOC, train for a yaml)")
    p.add_argument("--val-split", default="", help="split the original and the result are evaluated on "
                   "(default: test for VOC, val for a yaml)")
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--percent", type=fraction, help="prune this fraction of all channels (one global threshold)")
    goal.add_argument("--target-latency", type=fraction, metavar="R",
                      help="least pruning with onnxruntime CPU latency (1 thread, --img) at most R x the original's")
    p.add_argument("--round-to", type=channel_multiple, default=8,
                   help="round kept channel counts up to a multiple (8: CPU SIMD, 16: Ascend cube unit; default 8)")
    p.add_argument("--min-keep", type=fraction, default=0.0, help="keep at least this fraction of every layer")
    p.add_argument("--no-fold-bias", dest="fold_bias", action="store_false",
                   help="drop removed channels' constant output instead of folding it into the next layers")
    p.add_argument("--sparsity-epochs", type=epoch_count, default=0, help="sparsity-training epochs (default 0: none)")
    p.add_argument("--sparsity", "--sr", dest="sparsity", type=float, default=1e-3, metavar="SR",
                   help="L1 rate on BN gammas per optimiser step (default 1e-3)")
    p.add_argument("--sparsity-decay", type=fraction, default=0.9, help="SR falls linearly by this fraction")
    p.add_argument("--sparsity-beta", type=float, default=0.0, metavar="K",
                   help="also K x SR x sign(beta) on BN biases")
    p.add_argument("--finetune-epochs", type=int_range(1, 100_000), default=15,
                   help="finetuning epochs after pruning (default 15)")
    p.add_argument("--distill", action="store_true", help="distil from the unpruned model in both training stages")
    p.add_argument("--distill-weight", type=float, default=4.0, help="distillation term x this (default 4)")
    p.add_argument("--distill-images", default="", metavar="DIR",
                   help="unlabelled images mixed into training, contributing the distillation term only")
    p.add_argument("--img", "--img-size", dest="img", type=image_size, default=640,
                   help="evaluation, export and latency size (default 640)")
    p.add_argument("--train-img", type=image_size, default=None, help="training size (default: --img)")
    p.add_argument("--batch-size", type=batch_size, default=16)
    p.add_argument("--optimizer", choices=("SGD", "Adam", "AdamW"), default="SGD")
    p.add_argument("--adam", dest="optimizer", action="store_const", const="Adam", help="same as --optimizer Adam")
    p.add_argument("--hyp", help="YOLOv5 hyperparameter yaml for both training stages (default hyp.scratch-low "
                   "with warmup_bias_lr 0)")
    p.add_argument("--cos-lr", action="store_true", help="cosine instead of linear learning-rate decay")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda:N")
    p.add_argument("--workers", type=int_range(0, 64), default=2, help="data loader processes (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deploy", default="", metavar="DIR", help="also write the Ascend 310 bundle of the result here")
    p.add_argument("--soc", default="Ascend310", help="ATC --soc_version for --deploy")
    p.add_argument("--project", default="runs/slim", help="runs are saved to project/name (default runs/slim)")
    p.add_argument("--name", default="exp", help="run name; exp, exp2, ... when it exists")
    p.add_argument("--exist-ok", action="store_true", help="reuse project/name when it holds no slim run")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue a run, skipping finished stages (default: project/name)")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as train: idle OpenMP threads sleep on a busy machine
    from pathlib import Path

    from ..errors import AscendSlimError
    from ..fileio import check_outputs
    from ..recipes.slim import SLIM_HYP, SlimConfig, slim
    from ..train.builder import next_run_dir
    from ..train.hyp import load_hyp

    if args.resume:
        folder = Path(args.project) / args.name if args.resume is True else Path(args.resume)
        run_ = slim(SlimConfig(weights="", data="", save_dir=str(folder)), resume=True)
    else:
        if not args.weights or not args.data:
            raise AscendSlimError("--weights and --data are required (or --resume a run)")
        if args.percent is None and args.target_latency is None:
            raise AscendSlimError("give --percent or --target-latency: how much to prune")
        save_dir = next_run_dir(args.project, args.name, args.exist_ok)
        check_outputs([("--weights", args.weights), ("--data", args.data), ("--hyp", args.hyp),
                       ("--distill-images", args.distill_images)],
                      folders=[("--project/--name", save_dir), ("--deploy", args.deploy)])
        hyp = load_hyp(args.hyp or SLIM_HYP)
        config = SlimConfig(
            weights=args.weights, data=args.data, classes=args.classes, train_split=args.train_split,
            val_split=args.val_split, percent=args.percent, target_latency=args.target_latency, round_to=args.round_to,
            min_keep=args.min_keep, fold_bias=args.fold_bias, sparsity_epochs=args.sparsity_epochs,
            sparsity_rate=args.sparsity, sparsity_decay=args.sparsity_decay, sparsity_beta=args.sparsity_beta,
            finetune_epochs=args.finetune_epochs, distill=args.distill, distill_weight=args.distill_weight,
            distill_images=args.distill_images, img_size=args.img, train_img_size=args.train_img or 0,
            batch_size=args.batch_size, optimizer=args.optimizer, sparsity_hyp=hyp, finetune_hyp=hyp,
            cos_lr=args.cos_lr, device=args.device, workers=args.workers, seed=args.seed, deploy=args.deploy,
            soc=args.soc, save_dir=str(save_dir))
        run_ = slim(config)
    report = run_.stages["report"].result
    m, lat = report["map"]["ap50_voc07"], report["latency"]
    print(f"mAP@0.5 (VOC07) {m['original']:.4f} -> {m['final']:.4f} ({m['change_points']:+.2f} points); "
          f"onnxruntime {lat['1 thread']['speedup']:.2f}x faster on 1 thread, {lat['all cores']['speedup']:.2f}x "
          f"on all cores")
    print(f"done: {run_.path('final.pt')}, {run_.path('final.onnx')}, report {report['report']}")
    return 0
