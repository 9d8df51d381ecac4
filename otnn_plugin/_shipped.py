"""The evaluation configs and the paper's numbers shipped with the package.

One copy lives in the repository's ``evaluations/`` folder. A wheel carries its ``*.yaml`` files as the package data
of ``otnn_plugin.evaluations`` (``package-dir`` in ``pyproject.toml``). A source checkout, installed in editable mode
or not, reads the folder itself: setuptools' editable finder cannot import a subpackage mapped outside its parent's
folder.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from ._names import unknown_name

__all__ = ["evaluations_dir", "list_configs", "config_path", "paper_claims_path", "paper_numbers_path"]

PAPER_NUMBERS = "paper_numbers.yaml"
PAPER_CLAIMS = "paper_claims.yaml"


def evaluations_dir() -> Path:
    """The folder holding the shipped configs: the wheel's package data, else the checkout's ``evaluations/``."""
    packaged = resources.files(__package__) / "evaluations"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "evaluations"


def list_configs() -> list[str]:
    """Names of the shipped evaluation configs (``quick``, ...)."""
    return sorted(p.stem for p in evaluations_dir().glob("*.yaml") if p.name not in (PAPER_NUMBERS, PAPER_CLAIMS))


def config_path(name: str) -> Path:
    """The shipped evaluation config ``name``; a ``ValueError`` suggesting the closest name otherwise."""
    if name not in list_configs():
        raise unknown_name("evaluation config", name, list_configs())
    return evaluations_dir() / f"{name}.yaml"


def paper_numbers_path() -> Path:
    """The paper's numbers (Tables 1-4 and 10-12 of arXiv:2206.06854) that leaderboards show beside ours."""
    return evaluations_dir() / PAPER_NUMBERS


def paper_claims_path() -> Path:
    """The claims of the paper's Sec. 5.1 and A.4 whose verdicts leaderboards compute from results."""
    return evaluations_dir() / PAPER_CLAIMS
