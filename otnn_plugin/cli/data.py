"""``otnn data``: list the datasets, or print a dataset's row counts and label rates per split."""
from __future__ import annotations

import argparse

from ..data import SPLITS, label_columns, label_names, label_rates, list_datasets, load_dataset
from ._args import shared_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="list the datasets, or show a dataset's rows and label rates")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the dataset names load_dataset accepts").set_defaults(func=run)
    stats = actions.add_parser("stats", parents=[shared_options("--data-dir")], help="rows per split and the rate of every label (CelebA: positive rate)")
    stats.add_argument("name", help="dataset name, see `otnn data list`")
    stats.add_argument("--attributes", choices=("paper", "all"), help="CelebA: the paper's 22 labels or all 40")
    stats.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        print("\n".join(list_datasets()))
        return 0
    options = {"attributes": args.attributes} if args.attributes else {}
    splits = {split: load_dataset(args.name, split, args.data_dir, **options) for split in SPLITS}
    rates = {split: label_rates(dataset) for split, dataset in splits.items()}
    names = label_names(args.name, args.data_dir, **options)
    width = max(len(name) for name in names) + 2
    print(f"{args.name}: " + ", ".join(f"{split} {len(dataset):,} rows" for split, dataset in splits.items()))
    kind = "positive rate" if label_columns(splits["train"]) else "share of rows"
    print(f"{'label':<{width}}" + "".join(f"{split:>8}" for split in SPLITS) + f"   ({kind})")
    for index, name in enumerate(names):
        print(f"{name:<{width}}" + "".join(f"{rates[split][index].item():8.3f}" for split in SPLITS))
    return 0
