"""``otnn train``: train a recipe on CPU or GPU, resumable, optionally into registry/; on several processes when
launched by ``torchrun`` (``WORLD_SIZE`` > 1, see :mod:`otnn_plugin.train.distributed`)."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from .._files import check_output
from ..data.transforms import describe_augmentations
from ..hub import registry_dir, save_to_registry
from ..train import list_recipes, load_recipe, prepare, train
from ..train import distributed
from ..train.card import model_card
from ..train.precision import PRECISIONS
from ..train.scores import test_diagnostics
from ..train.trainer import LOG
from ._args import key_value, shared_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", parents=[shared_options("--device", "--data-dir", "--quiet")], help="train an OTNN or unconstrained model from a recipe",
        description="Train from a recipe (a shipped name or a YAML path); flags override the recipe. "
                    f"Shipped recipes: {', '.join(list_recipes())}.",
    )
    parser.add_argument("--recipe", required=True, help="recipe name or path to a YAML file")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--lr", type=float, help="Adam learning rate")
    parser.add_argument("--weight-decay", type=float, help="AdamW's decoupled weight decay (0: Adam)")
    parser.add_argument("--batch-size", type=int, help="global batch size (torchrun splits it over the processes)")
    parser.add_argument("--seed", type=int, help="seed for initialisation, shuffling and augmentation")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help=f"augment the training images ({describe_augmentations()})")
    parser.add_argument("--train-limit", type=int, help="use only this many training images (seeded subset)")
    parser.add_argument("--test-limit", type=int, help="use only this many test images (seeded subset)")
    parser.add_argument("--power-iterations", type=int,
                        help="power-iteration steps per training forward in each spectral layer (OTNNs)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="fp32, or bf16 autocast (refused for OTNNs whose 1-Lipschitz bound it breaks)")
    parser.add_argument("--loss-arg", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                        help="override one loss argument of the recipe (repeatable), e.g. --loss-arg lam=10")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                        help="override one model argument of the recipe (repeatable), e.g. --model-arg conv=spectral")
    parser.add_argument("--out", help="run folder for checkpoint.safetensors and log.jsonl (default: runs/RECIPE)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--registry", action="store_true",
                        help="when done, write the model to the registry under the recipe's registry_name")
    parser.add_argument("--registry-dir", type=Path,
                        help="registry root (default: $OTNN_REGISTRY, else the checkout's registry/, else ./registry)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe, epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                         augment=args.augment, batch_size=args.batch_size, seed=args.seed,
                         train_limit=args.train_limit, test_limit=args.test_limit, precision=args.precision,
                         power_iterations=args.power_iterations)
    recipe = recipe.updated(loss_args={**recipe.loss_args, **dict(args.loss_arg)},
                            model_args={**recipe.model_args, **dict(args.model_arg)})
    if args.registry and not recipe.registry_name:
        raise ValueError(f"recipe {recipe.name} has no registry_name: add one to export it with --registry")
    run_dir = check_output(args.out or Path("runs") / recipe.name, folder=True)
    registry = (check_output(args.registry_dir or registry_dir() or Path("registry"), folder=True) if args.registry
                else None)
    with distributed.process_group(args.device) as device:
        prepared = prepare(recipe, device=device, data_dir=args.data_dir)
        result = train(prepared, run_dir, resume=args.resume, progress=not args.quiet)
        if not distributed.world().is_main:
            return 0
    diagnostics = test_diagnostics(prepared)
    print(json.dumps({"run_dir": str(run_dir), "epochs": result.epochs, "test": result.scores,
                      "diagnostics": diagnostics}))
    if args.registry:
        log = [json.loads(line) for line in (run_dir / LOG).read_text().splitlines()]
        card = model_card(recipe.registry_name, prepared, result, "otnn " + shlex.join(args.argv), log, diagnostics)
        folder = save_to_registry(prepared.model.eval(), recipe.registry_name, card, registry)
        print(f"registry: {folder}")
    return 0
