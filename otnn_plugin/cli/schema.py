"""``otnn schema``: the JSON Schema of an evaluation config or a training recipe, for editors to complete and check.

Point an editor at it, e.g. with the YAML language server: ``# yaml-language-server: $schema=evaluation.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._files import atomic_write_text, check_output

#: File kind -> the pydantic model that validates it.
KINDS = {"evaluation": ("otnn_plugin.evaluate.config", "EvalConfig"), "recipe": ("otnn_plugin.train.recipe", "Recipe")}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("schema", help="JSON Schema of evaluation configs or training recipes",
                                   description="Print (or write) the JSON Schema that evaluation configs "
                                               "(evaluations/*.yaml) or training recipes follow.")
    parser.add_argument("kind", choices=sorted(KINDS), help="which file kind")
    parser.add_argument("--out", type=Path, help="write the schema to this file instead of printing it")
    parser.set_defaults(func=run)


def schema(kind: str) -> dict:
    """The JSON Schema of a file kind (see :data:`KINDS`)."""
    import importlib

    module, name = KINDS[kind]
    model = getattr(importlib.import_module(module), name)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}


def run(args: argparse.Namespace) -> int:
    text = json.dumps(schema(args.kind), indent=2) + "\n"
    if args.out is None:
        print(text, end="")
    else:
        atomic_write_text(check_output(args.out, folder=False), text)
        print(args.out)
    return 0
