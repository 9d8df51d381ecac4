"""``otnn push``: publish a registry folder to the Hugging Face hub (needs network and a token)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data.sources import offline_mode
from ..hub import hub_reachable, push_to_hub


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("push", help="publish a registry folder to the Hugging Face hub")
    parser.add_argument("folder", type=Path, help="a registry folder, e.g. registry/otnn_mlp_snowflake")
    parser.add_argument("--repo-id", help="hub repository (default: otnn-plugin/<folder name>)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    offline = offline_mode()
    if offline:
        raise ConnectionError(f"cannot push {args.folder} in offline mode ({offline}): unset it to publish")
    if not hub_reachable():
        raise ConnectionError(f"cannot push {args.folder}: the Hugging Face hub is unreachable; connect to the "
                              "network and try again")
    print(f"published {push_to_hub(args.folder, args.repo_id, args.private)}")
    return 0
