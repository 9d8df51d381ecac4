"""``otnn leaderboard``: build the leaderboard of one or more evaluation results."""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from .._files import check_output


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "leaderboard", help="tables (md, csv, json), figures and an HTML page from evaluation results",
        description="Aggregate results of `otnn evaluate` (mean ± standard error, ranks, the paper's numbers) into "
                    "OUT/leaderboard.{md,csv,json,html} and OUT/figures/*.png. Results of one config are merged.",
    )
    parser.add_argument("results", nargs="+", type=Path, help="results.jsonl files, or the folders holding them")
    parser.add_argument("--out", type=Path, help="output folder (default: the folder of the only results given)")
    parser.add_argument("--paper", type=Path,
                        help="the paper's numbers (default: the shipped evaluations/paper_numbers.yaml)")
    parser.add_argument("--readme", type=Path,
                        help="copy the verdicts' summary (OUT/claims.md) into this README, between its markers")
    parser.add_argument("--claims", type=Path,
                        help="the paper's claims to judge (default: the shipped evaluations/paper_claims.yaml)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate import build_leaderboard, load_paper_claims, load_paper_numbers, read_results, write_report

    results = [read_results(path) for path in args.results]
    if args.out is None and len(results) > 1:
        raise ValueError("several results given: pass --out for the combined leaderboard")
    out = check_output(args.out or results[0].folder, folder=True)
    board = build_leaderboard(results, load_paper_numbers(args.paper), "otnn " + shlex.join(args.argv),
                              load_paper_claims(args.claims))
    for path in write_report(board, results, out):
        if path.suffix != ".png":
            print(path)
    if args.readme is not None:
        from ..evaluate.report import CLAIMS, sync_readme

        claims = os.path.relpath(out / CLAIMS, args.readme.resolve().parent)
        if not sync_readme(args.readme, claims):
            raise ValueError(f"{args.readme} has no block for {claims}: add the two markers of "
                             "otnn_plugin.evaluate.report.readme_block where the verdicts should go")
        print(f"{args.readme}: verdicts of {claims} copied")
    return 0
