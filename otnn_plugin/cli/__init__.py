"""The ``otnn`` command: each subcommand lives in its own module and only parses arguments.

Errors the user can fix (bad names, missing files, bad configs) are printed as one line on stderr with exit
code 2 and no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

#: Subcommand modules (every public module of this package); each defines ``register(subparsers)``,
#: which adds a parser with ``func=run``.
COMMANDS = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otnn", description="Optimal-Transport Neural Networks: train, explain, evaluate.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args) or 0
    except (ValueError, KeyError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"otnn {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"otnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
