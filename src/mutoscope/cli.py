"""One CLI: `mutoscope <command> ...`. Each command lives in its own module that adds a subparser.

A command module exposes `add_parser(subparsers)`; the parser it adds sets `func` to a callable taking
the parsed args and returning an exit code. Bad input raises UserError: one readable line, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mutoscope import __version__
from mutoscope.allocator import reexec_tuned
from mutoscope.errors import UserError

# Imported lazily by name so that `mutoscope --help` does not pay for torch or OpenCV.
COMMAND_MODULES = (
    "mutoscope.world.cli_world",
    "mutoscope.world.judge.cli_judge",
    "mutoscope.eval.cli_eval",
    "mutoscope.cli_train",
    "mutoscope.cli_generate",
    "mutoscope.cli_serve",
    "mutoscope.cli_verify",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2, no usage dump
        raise UserError("cli.usage", f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mutoscope", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mutoscope {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting steal the cores from everything else on a small machine
    # (16 sampling steps beside a training run: 1.2 s passive, 13-21 s spinning). It must be set
    # before torch loads, which the commands import lazily below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if argv is None:  # a command line (not a call from Python): large tensors reuse freed pages
        reexec_tuned()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"mutoscope: error: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mutoscope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
