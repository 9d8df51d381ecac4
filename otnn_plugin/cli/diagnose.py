"""``otnn diagnose``: is a model in the optimal-transport regime? The figures of :mod:`otnn_plugin.diagnostics`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import timm
from safetensors.torch import load_file

from .. import data
from ..diagnostics import transport_diagnostics
from ..devices import resolve_device
from ..train.objectives import task_of
from ._args import key_value, shared_options

#: Printed columns: result key -> header.
COLUMNS = {"mean_grad_norm": "mean ||grad f_y||", "prop2_ratio": "Prop. 2 ratio", "taylor_error": "Taylor error",
           "gradient_cosine": "gradient cosine"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose", parents=[shared_options("--device", "--data-dir")], help="measure how close models are to the optimal-transport regime (gradient norm, Prop. 2)",
        description="On the first test images: the mean norm of the explained head's input gradient (1 in the "
                    "regime), the median |f(x')|/|f(x)| for x' = x - f(x) grad f(x) (0: Prop. 2), the median "
                    "error of a first-order Taylor step between two test images and the mean cosine of saliency "
                    "maps within a class (0 and 1 for a linear model).",
    )
    parser.add_argument("models", nargs="+", help="timm model names (pretrained weights: hub, else registry/)")
    parser.add_argument("--dataset", required=True, choices=data.list_datasets(), metavar="DATASET",
                        help="fashion_mnist or celeba (test split)")
    parser.add_argument("--samples", type=int, default=256, help="test images (default: %(default)s)")
    parser.add_argument("--weights", type=Path, help="a safetensors file to load instead (one model only)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                        help="a model argument, e.g. --model-arg conv=spectral for weights of the paper's layers")
    parser.add_argument("--json", action="store_true", help="print one JSON object per model instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.samples < 2:
        raise ValueError(f"--samples must be at least 2, got {args.samples}")
    if args.weights is not None and len(args.models) != 1:
        raise ValueError(f"--weights loads one model's weights, but {len(args.models)} models were named")
    if args.weights is not None and not args.weights.is_file():
        raise FileNotFoundError(f"weights file {args.weights} not found")
    device = resolve_device(args.device)
    x, y = data.to_tensors(data.load_dataset(args.dataset, "test", data_dir=args.data_dir))
    x, y = x[:args.samples].to(device), y[:args.samples].to(device)
    rows = {}
    for name in args.models:
        model = timm.create_model(name, pretrained=args.weights is None, **dict(args.model_arg))
        if args.weights is not None:
            model.load_state_dict(load_file(args.weights))
        rows[name] = transport_diagnostics(model.to(device), x, y, task_of(y))
    if args.json:
        for name, row in rows.items():
            print(json.dumps({"model": name, **row}))
        return 0
    width = max(len(name) for name in rows)
    print(f"{'model':<{width}}  " + "  ".join(f"{h:>17}" for h in COLUMNS.values()) + f"   ({len(x)} test images)")
    for name, row in rows.items():
        print(f"{name:<{width}}  " + "  ".join(f"{row[key]:>17.4f}" for key in COLUMNS))
    return 0
