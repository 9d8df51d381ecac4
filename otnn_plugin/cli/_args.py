"""Argument types shared by several ``otnn`` subcommands."""
from __future__ import annotations

import argparse

import yaml

__all__ = ["key_value", "shared_options"]

#: Options several subcommands share, with one wording: flag -> ``add_argument`` keywords.
_SHARED = {
    "--device": dict(default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N"),
    "--data-dir": dict(help="folder holding the local datasets, fashion-mnist/ and celeba-subset/ (default: "
                            "$OTNN_DATA_DIR, else the Hugging Face hub)"),
    "--quiet": dict(action="store_true", help="no progress bar"),
}


def shared_options(*flags: str) -> argparse.ArgumentParser:
    """A parent parser (``add_parser(..., parents=[...])``) holding the named shared options."""
    parent = argparse.ArgumentParser(add_help=False)
    for flag in flags:
        parent.add_argument(flag, **_SHARED[flag])
    return parent


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE``, the value read as YAML (``lam=10`` is the number 10, ``conv=spectral`` the string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)
