"""Argument types shared by several ``otnn`` subcommands."""
from __future__ import annotations

import argparse

import yaml

__all__ = ["key_value"]


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE``, the value read as YAML (``lam=10`` is the number 10, ``conv=spectral`` the string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)
