"""Reading YAML files (configs, recipes, the paper's numbers) with errors that say where: file, line and column."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["read_yaml"]


def read_yaml(path: str | Path, what: str) -> Any:
    """The content of the YAML file ``path``; ``what`` names it in errors (e.g. ``"evaluation config"``).

    A missing file raises ``FileNotFoundError``, a syntax error ``ValueError`` with its line and column, each in
    one line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{what} {path} is not valid YAML: {where}{problem}") from None
