"""The ``ascend-slim`` command line (also ``python -m ascend_slim``).

Each subcommand is one module of this package with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> exit code``, listed in :data:`COMMANDS`. Modules import their heavy dependencies inside ``run``,
so building the parser never imports torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import AscendSlimError
from . import convert, deploy, detect, export, finetune, plan, prune, quantize, report, slim, speed, train
from . import eval as eval_

COMMANDS = (detect, speed, eval_, export, deploy, convert, prune, quantize, report, train, finetune, slim, plan)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ascend-slim",
        description="Prune, compress and deploy YOLOv5 detectors: Ascend 310 (ATC, MindX, pyACL) and onnxruntime.",
        epilog="`ascend-slim COMMAND --help` lists a command's flags.")
    parser.add_argument("--version", action="version", version=f"ascend-slim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.HELP)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AscendSlimError as exc:
        print(f"ascend-slim {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # permissions, full disk, a file where a folder should be, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"ascend-slim {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
