"""``ascend-slim finetune``: ``train`` starting from a checkpoint's own architecture (e.g. a pruned model)."""

from __future__ import annotations

import argparse

from . import train

NAME = "finetune"
HELP = "train a checkpoint further on its own architecture (e.g. after pruning); flags as train"


def add_arguments(p: argparse.ArgumentParser) -> None:
    train.add_arguments(p, finetune=True)


def run(args: argparse.Namespace) -> int:
    from ..errors import AscendSlimError

    if not args.weights and not args.resume:
        raise AscendSlimError("--weights is required: the checkpoint to finetune (or --resume a run)")
    return train.run(args)
