"""``ascend-slim train``: train a YOLOv5 on a VOCdevkit folder or an Ultralytics data yaml (YOLOv5 flags).

Multi-process: ``torchrun --nproc_per_node N -m ascend_slim train ...`` (Gloo on the CPU, NCCL on GPUs).
"""

from __future__ import annotations

import argparse
import os

from .args import fraction, image_size, int_range

# Training-only flag ranges (the shared ones are in cli/args.py).
epoch_count = int_range(1, 100_000)
total_batch_size = int_range(1, 4096)
loader_workers = int_range(0, 256)
DEFAULT_EPOCHS = 100

NAME = "train"
HELP = "train a YOLOv5 (from official weights, a checkpoint or a yaml) with YOLOv5's loss and schedule"


def _cache(text: str) -> str:
    if text != "ram":
        raise argparse.ArgumentTypeError(f"only --cache ram is supported, got {text!r}")
    return text


def add_arguments(p: argparse.ArgumentParser, finetune: bool = False) -> None:
    """The train flags; ``finetune`` (the finetune command) drops --cfg and --classes."""
    p.add_argument("--data", help="a VOCdevkit folder or an Ultralytics data yaml (path/train/val/names)")
    p.add_argument("--weights", default="",
                   help="initial weights: an official YOLOv5 .pt or an ascend-slim checkpoint (e.g. a pruned one)")
    if not finetune:
        p.add_argument("--cfg", default="", help="model yaml (shipped name such as yolov5n, or a path): train from "
                       "scratch, or with --weights take the weights that fit")
        p.add_argument("--classes", choices=("voc", "coco"), default="",
                       help="remap a COCO model to this class set first (exact head slicing)")
    p.add_argument("--hyp", help="YOLOv5 hyperparameter yaml (default: hyp.scratch-low values)")
    p.add_argument("--epochs", type=epoch_count, default=None,
                   help=f"epochs in all (default {DEFAULT_EPOCHS}; with --resume: the run's schedule, "
                        "lengthened or shortened, is recomputed to end there)")
    p.add_argument("--batch-size", type=total_batch_size, default=16, help="total batch size over all processes")
    p.add_argument("--img", "--img-size", "--imgsz", dest="img", type=image_size, default=640,
                   help="train and validation image size in pixels (default 640)")
    p.add_argument("--device", default="", help="cpu, cuda:N, or GPU ids such as 0,1 (default: GPU 0 if any)")
    p.add_argument("--workers", type=loader_workers, default=8,
                   help="data loader processes per rank (0: in the main process)")
    p.add_argument("--optimizer", choices=("SGD", "Adam", "AdamW"), default="SGD")
    p.add_argument("--adam", dest="optimizer", action="store_const", const="Adam", help="same as --optimizer Adam")
    p.add_argument("--cos-lr", action="store_true", help="cosine instead of linear learning-rate decay")
    p.add_argument("--cache", nargs="?", const="ram", type=_cache, help="decode the images once into RAM")
    p.add_argument("--train-split", default="", help="training split (default: trainval for VOC, train for a yaml)")
    p.add_argument("--val-split", default="", help="validation split (default: test for VOC, val for a yaml)")
    p.add_argument("--noval", action="store_true", help="validate only after the last epoch")
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="train in float32 on CUDA too (default: float16 mixed precision with a GradScaler there)")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across GPU processes (torchrun)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--project", default="runs/train", help="runs are saved to project/name (default runs/train)")
    p.add_argument("--name", default="exp", help="run name; exp, exp2, exp3, ... when it exists")
    p.add_argument("--exist-ok", action="store_true", help="reuse project/name instead of incrementing")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="LAST_PT",
                   help="continue an interrupted run (default: the newest last.pt under --project)")
    if not finetune:  # sparsity training (network slimming); finetuning after a prune runs without it
        p.add_argument("--sparsity", "--sr", dest="sparsity", type=float, default=0.0, metavar="SR",
                       help="L1 rate on every prunable BatchNorm gamma per optimiser step (0: off)")
        p.add_argument("--st", action="store_true", help="accepted for midasklr compatibility (--sparsity sets SR)")
        p.add_argument("--sparsity-decay", type=fraction, default=0.9, help="SR falls linearly by this fraction")
        p.add_argument("--sparsity-beta", type=float, default=0.0, metavar="K", help="also K x SR x sign(beta)")
    p.add_argument("--distill", metavar="TEACHER_PT", help="distil from this checkpoint (e.g. the unpruned model)")
    p.add_argument("--distill-weight", type=float, default=1.0, help="distillation term x this (default 1)")
    p.add_argument("--distill-images", metavar="DIR",
                   help="unlabelled images mixed into training, contributing the distillation term only")


def run(args: argparse.Namespace) -> int:
    # Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. On a busy machine spinning
    # threads made training 8x slower (1.4 vs 10.9 images/s, benchmarks/bench_train.py); an explicit
    # OMP_WAIT_POLICY in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..errors import AscendSlimError
    from ..fileio import check_output_dir, check_outputs, claim_run_dir
    from ..model.checkpoint import load_training_state
    from ..recipes.callbacks import training_callbacks  # also registers them for restore_callbacks
    from ..train.builder import build_trainer, latest_checkpoint, next_run_dir, resume_trainer
    from ..train.callbacks import restore_callbacks
    from ..train.config import TrainConfig
    from ..train.distributed import close_distributed
    from ..train.hyp import load_hyp

    if args.resume:
        if args.weights:
            raise AscendSlimError("--weights is not used with --resume: the run continues from its checkpoint")
        checkpoint = latest_checkpoint(args.project) if args.resume is True else args.resume
        trainer = resume_trainer(checkpoint, restore_callbacks(load_training_state(checkpoint)["callbacks"]),
                                 epochs=args.epochs)
        check_output_dir(trainer.save_dir, "run folder")
    else:
        if not args.data:
            raise AscendSlimError("--data is required: a VOCdevkit folder or an Ultralytics data yaml")
        save_dir = next_run_dir(args.project, args.name, args.exist_ok)
        check_outputs([("--weights", args.weights), ("--data", args.data), ("--hyp", args.hyp),
                       ("--cfg", getattr(args, "cfg", "")), ("--distill", args.distill),
                       ("--distill-images", args.distill_images)], folders=[("--project/--name", save_dir)])
        hyp = load_hyp(args.hyp)  # a bad file is refused before the run folder is made
        created, writes = False, int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 writes
        if writes:
            save_dir, created = claim_run_dir(save_dir, exist_ok=args.exist_ok, increment=not args.exist_ok)
        try:
            held = [p for p in ("weights/last.pt", "results.csv") if writes and (save_dir / p).exists()]
            if held:
                raise AscendSlimError(f"{save_dir} holds a training run ({held[0]}): resume it with --resume "
                                      f"{save_dir / 'weights' / 'last.pt'}, or choose another --name")
            config = TrainConfig(
                data=args.data, weights=args.weights, cfg=getattr(args, "cfg", ""),
                classes=getattr(args, "classes", ""), train_split=args.train_split, val_split=args.val_split,
                cache=args.cache, epochs=args.epochs or DEFAULT_EPOCHS, batch_size=args.batch_size, img_size=args.img,
                optimizer=args.optimizer, hyp=hyp, cos_lr=args.cos_lr, device=args.device, workers=args.workers,
                seed=args.seed, sync_bn=args.sync_bn, noval=args.noval, amp=args.amp, save_dir=str(save_dir))
            trainer = build_trainer(config, training_callbacks(
                sparsity=getattr(args, "sparsity", 0.0), sparsity_decay=getattr(args, "sparsity_decay", 0.9),
                sparsity_beta=getattr(args, "sparsity_beta", 0.0), distill=args.distill,
                distill_weight=args.distill_weight, distill_images=args.distill_images))
        except BaseException:
            if created and not any(save_dir.iterdir()):
                save_dir.rmdir()  # a start that failed leaves no empty run folder
            raise
    try:
        if trainer.is_main:
            print(f"training {trainer.start_epoch}..{trainer.epochs - 1} on {trainer.device} "
                  f"({trainer.ctx.world_size} process(es)); results in {trainer.save_dir}/")
        row = trainer.fit()
    finally:
        close_distributed()
    if trainer.is_main:
        maps = "  ".join(f"{k.removeprefix('metrics/')} {v:.4f}" for k, v in row.items() if k.startswith("metrics/"))
        print(f"done: {trainer.last_path}" + (f"  {maps}" if maps else ""))
    return 0
