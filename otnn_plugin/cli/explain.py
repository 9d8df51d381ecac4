"""``otnn explain``: a counterfactual sheet (paper Fig. 1, 4, 5) of a model, and optionally its twin, as a PNG."""
from __future__ import annotations

import argparse

import timm
import torch
from torch import nn

from ..data import list_datasets
from ..explainers.transport import STEPS
from ..figures import check_png_path, save_png
from ..figures.sheets import PAPER_ATTRIBUTES, counterfactual_sheet
from ..lipschitz import is_otnn
from ..devices import resolve_device
from ._args import shared_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain", parents=[shared_options("--device", "--data-dir")], help="draw gradients and transport counterfactuals x - t f(x) grad f(x) of test images as a PNG",
        description="Fashion-MNIST: for a few test images, the targeted gradient and counterfactual towards every "
                    "class (paper Fig. 1, 5). CelebA: for each attribute, images without then with it, their "
                    "gradient and the counterfactual that adds or removes it (Fig. 4). Models load their "
                    "pretrained weights (hub, else registry/).",
    )
    parser.add_argument("model", help="timm model name, e.g. otnn_vgg_fashionmnist_small")
    parser.add_argument("--twin",
                        help="a second model drawn under the first, e.g. unconstrained_vgg_fashionmnist_small")
    parser.add_argument("--dataset", required=True, choices=list_datasets(), metavar="DATASET",
                        help="fashion_mnist or celeba (test split)")
    parser.add_argument("--attributes", nargs="+",
                        help=f"CelebA attributes, one row each (default: {' '.join(PAPER_ATTRIBUTES)})")
    parser.add_argument("--samples", type=int, default=3,
                        help="source images (Fashion-MNIST), or images per attribute, half without and half with "
                             "it (CelebA) (default: %(default)s)")
    parser.add_argument("--t", type=float, default=10.0, help="step size t (default: %(default)s, as paper Fig. 1, 5)")
    parser.add_argument("--step", choices=STEPS, default="gradient",
                        help="gradient: x - t f grad f (the paper's); newton: divided by ||grad f||^2")
    parser.add_argument("--seed", type=int, default=0, help="seed for picking the images (and --random-init weights)")
    parser.add_argument("--random-init", action="store_true",
                        help="freshly initialised models instead of pretrained weights (to try the command)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.set_defaults(func=run)


def _create(name: str, pretrained: bool, seed: int, device: torch.device) -> nn.Module:
    known = [n for family in ("otnn_*", "unconstrained_*") for n in timm.list_models(family, include_tags=True)]
    if name not in known:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(known)}")
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=pretrained).to(device).eval()


def run(args: argparse.Namespace) -> int:
    check_png_path(args.out)
    device = resolve_device(args.device)
    models = {}
    for name in [args.model] + ([args.twin] if args.twin else []):
        model = _create(name, not args.random_init, args.seed, device)
        label = ("OTNN" if is_otnn(model) else "unconstrained") + ("\n(random init)" if args.random_init else "")
        models[name if label in models else label] = model
    figure = counterfactual_sheet(models, args.dataset, attributes=args.attributes, samples=args.samples, t=args.t,
                                  step=args.step, seed=args.seed, data_dir=args.data_dir)
    print(f"figure: {save_png(figure, args.out)}")
    return 0
