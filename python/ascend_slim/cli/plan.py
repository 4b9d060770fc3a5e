"""``ascend-slim plan``: the compound plan's frontier without building a model (``slim --plan-only``)."""

from __future__ import annotations

import argparse

from . import slim

NAME = "plan"
HELP = "measure input size x channel cut x precision and report the Pareto frontier (slim --plan-only)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    slim.add_arguments(p, plan_only=True, target_latency=None, max_drop=None)


def run(args: argparse.Namespace) -> int:
    return slim.run(args)
