"""``otnn demo``: build an OTNN and its unconstrained twin, export the OTNN, print sizes and Lipschitz bounds."""
from __future__ import annotations

import argparse

import timm
import torch

from ..lipschitz import lipschitz_report
from ..models import export_vanilla


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="build both models of a pair, export the OTNN, measure Lipschitz bounds")
    parser.add_argument("--pair", default="vgg_fashionmnist_gnp",
                        help="architecture suffix shared by otnn_* and unconstrained_* (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=8, help="random inputs used for the gradient norms")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = [f"otnn_{args.pair}", f"unconstrained_{args.pair}"]
    pairs = [m[len("otnn_"):] for m in timm.list_models("otnn_*")]
    if args.pair not in pairs:
        raise ValueError(f"unknown pair {args.pair!r}; choose one of: {', '.join(pairs)}")
    torch.manual_seed(0)
    otnn, twin = (timm.create_model(n) for n in names)
    inputs = torch.rand(args.samples, *otnn.pretrained_cfg["input_size"])
    exported = export_vanilla(otnn)
    with torch.no_grad():
        gap = (exported(inputs) - otnn.eval()(inputs)).abs().max().item()
    print(f"{'model':<40} {'params':>10}  Lipschitz check on {args.samples} random inputs")
    for name, model in zip(names, (otnn, twin)):
        report = lipschitz_report(model, inputs)
        print(f"{name:<40} {sum(p.numel() for p in model.parameters()):>10,}  "
              f"max |grad f_k| {report['max_grad_norm']:.3g}, mean {report['mean_grad_norm']:.3g}, "
              f"largest layer norm {report['max_layer_norm']:.4f}")
    print(f"export_vanilla({names[0]}): plain Conv2d/Linear, max |difference| to the OTNN {gap:.2e}")
    return 0
