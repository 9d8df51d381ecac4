"""``otnn evaluate``: run a config's models x explainers x metrics (resumable), then write its leaderboard."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .._files import check_output
from .._shipped import config_path, list_configs
from ._args import shared_options

if TYPE_CHECKING:
    from ..evaluate.config import Shard


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", parents=[shared_options("--data-dir", "--quiet")], help="score explainers with XAI metrics on an OTNN and its twin, side by side",
        description="Run every model x explainer x metric of an evaluation config on its samples, writing "
                    "per-sample scores to OUT/results.jsonl as they come (a killed run resumes where it stopped), "
                    "then the leaderboard (OUT/leaderboard.{md,csv,json,html}, OUT/figures/).",
    )
    parser.add_argument("config", help="evaluation config: a YAML file (e.g. evaluations/quick.yaml) or the name of "
                                       f"a shipped one ({', '.join(list_configs())})")
    parser.add_argument("--out", type=Path,
                        help="results folder (default: results/<config name> next to a YAML file, "
                             "./evaluations/results/<name> for a shipped name; with --samples, --random-weights or "
                             "--models, <config name>-samples<N> / -random / -<labels>)")
    parser.add_argument("--samples", type=int, help="evaluate only this many samples (smoke tests)")
    parser.add_argument("--models", nargs="+", metavar="LABEL",
                        help="run only these models of the config, e.g. one per machine or core; `otnn leaderboard "
                             "FOLDER...` merges the folders")
    parser.add_argument("--shard", type=_shard, metavar="I/N",
                        help="score only batches I, I+N, I+2N, ... (0-based) into their own folder, e.g. 0/2 and 1/2 "
                             "on two machines; `otnn leaderboard FOLDER...` merges the shards. Under torchrun: "
                             "RANK/WORLD_SIZE")
    parser.add_argument("--random-weights", action="store_true",
                        help="seeded random weights for every model instead of the configured ones (smoke tests)")
    parser.add_argument("--batch-size", type=int, help="samples per explanation and metric call")
    parser.add_argument("--device", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--retry-failed", action="store_true", help="compute the cells that failed before again")
    parser.add_argument("--no-leaderboard", action="store_true", help="only compute the scores")
    parser.set_defaults(func=run)


def _shard(text: str) -> Shard:
    from ..evaluate.config import Shard

    try:
        return Shard.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def launched_shard(shard: Shard | None = None) -> Shard | None:
    """``shard``, else this process's shard when ``torchrun`` started several (``RANK`` of ``WORLD_SIZE``)."""
    from ..evaluate.config import Shard

    world = int(os.environ.get("WORLD_SIZE", "1"))
    return shard if shard is not None or world < 2 else Shard(int(os.environ["RANK"]), world)


def default_out(config: Path, samples: int | None, random_weights: bool, models: list[str] | None = None,
                shard: Shard | None = None) -> Path:
    """``results/<stem>`` next to the config; reduced runs get their own folder, away from the full run's."""
    suffix = (f"-samples{samples}" if samples is not None else "") + ("-random" if random_weights else "")
    suffix += "".join(f"-{label}" for label in models or ())
    suffix += f"-shard{shard.index}of{shard.count}" if shard is not None else ""
    return config.parent / "results" / f"{config.stem}{suffix}"


def config_file(config: str) -> tuple[Path, Path]:
    """The config file that ``config`` names and the path :func:`default_out` places its results by: a YAML file
    itself, or a shipped config's name (``quick``) read from the package, its results under ``./evaluations``."""
    path = Path(config)
    if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) != 1:
        return path, path
    return config_path(config), Path("evaluations", f"{config}.yaml")


def run(args: argparse.Namespace) -> int:
    path, results_by = config_file(args.config)  # before the slow imports: a mistyped name fails at once
    from ..evaluate import (
        build_leaderboard, load_config, load_paper_claims, load_paper_numbers, prepare, run_evaluation, write_report,
    )

    config = load_config(path, samples=args.samples, batch_size=args.batch_size, device=args.device,
                         weights="random" if args.random_weights else None)
    shard = launched_shard(args.shard)
    out = check_output(args.out or default_out(results_by, args.samples, args.random_weights, args.models, shard),
                       folder=True)
    command = "otnn " + shlex.join(args.argv)
    summary = run_evaluation(prepare(config, args.data_dir, args.models), out, progress=not args.quiet, command=command,
                             retry_failed=args.retry_failed, shard=shard)
    print(f"{summary.results.path}: {summary.computed} units computed, {summary.skipped} already done, "
          f"{summary.seconds:.0f} s")
    if not args.no_leaderboard:
        board = build_leaderboard([summary.results], load_paper_numbers(), command, load_paper_claims())
        for path in write_report(board, [summary.results], out):
            if path.suffix != ".png":
                print(path)
    for model, explainer, metric in summary.failed_cells:
        print(f"failed: {model} x {explainer} x {metric}", file=sys.stderr)
    return 1 if summary.failed_cells else 0
