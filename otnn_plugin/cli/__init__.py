"""The ``otnn`` command: each subcommand lives in its own module and only parses arguments.

Errors the user can fix (bad names, missing files, bad configs, no network) are printed as one line on stderr with
exit code 2 and no traceback. ``--threads`` is an option of every command.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import torch

from .._progress import datasets_bars_hidden

#: Subcommand modules (every public module of this package); each defines ``register(subparsers)``,
#: which adds a parser with ``func=run``.
COMMANDS = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def _thread_count(text: str) -> int:
    count = int(text) if text.isdigit() else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a number of threads >= 1, got {text!r}")
    return count


def _add_threads(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads`` to ``parser`` and to every (sub)command below it, so that it goes anywhere on the line."""
    parser.add_argument("--threads", type=_thread_count, default=argparse.SUPPRESS, metavar="N",
                        help="torch threads for this command (default: torch's, one per core); on a shared or busy "
                             "machine, fewer threads than free cores avoid oversubscription, which can make a run "
                             "many times slower")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _add_threads(subparser)


def set_threads(count: int) -> None:
    """Use ``count`` torch threads, within operations and between them."""
    torch.set_num_threads(count)
    if torch.get_num_interop_threads() != count:
        try:
            torch.set_num_interop_threads(count)
        except RuntimeError:  # fixed once this process has run parallel work: only when main() runs twice in it
            pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otnn", description="Optimal-Transport Neural Networks: train, explain, evaluate.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    _add_threads(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if "threads" in args:
        set_threads(args.threads)
    try:
        with datasets_bars_hidden(getattr(args, "quiet", False)):
            return args.func(args) or 0
    except (ValueError, KeyError, OSError) as err:
        message = str(err.args[0] if isinstance(err, KeyError) and err.args else err).strip()
        print(f"otnn {args.command}: error: {message.splitlines()[0] if message else type(err).__name__}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"otnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
