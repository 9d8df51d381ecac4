"""Training recipes: small YAML files, one per paper setting or CPU budget (paper appendix A.2.3)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .._names import unknown_name
from .._yaml import read_yaml

__all__ = ["Recipe", "load_recipe", "list_recipes", "SCHEDULES"]

#: Learning-rate schedules: the paper's ``constant`` rate, or a ``cosine`` decay to 0.
SCHEDULES = ("constant", "cosine")


@dataclass
class Recipe:
    """What to train, on what, with which loss and optimiser (Adam, as in the paper).

    ``power_iterations`` is the number of power-iteration steps each spectral layer runs per training forward
    (deel-torchlip runs 1; large learning rates need more, see :mod:`otnn_plugin.spectral`). ``schedule`` is the
    paper's ``constant`` learning rate or a ``cosine`` decay from ``lr`` to 0 over the run, step by step.
    """

    name: str
    model: str
    dataset: str
    loss: str
    epochs: int
    lr: float
    batch_size: int = 128
    model_args: dict[str, Any] = field(default_factory=dict)
    dataset_args: dict[str, Any] = field(default_factory=dict)
    loss_args: dict[str, Any] = field(default_factory=dict)
    augment: bool = False
    precision: str = "fp32"
    seed: int = 0
    train_limit: int | None = None
    test_limit: int | None = None
    radii: tuple[float, ...] = (0.1, 0.25, 0.5)
    grad_norm_samples: int = 64
    diagnostic_samples: int = 256
    power_iterations: int = 1
    schedule: str = "constant"
    registry_name: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "grad_norm_samples", "diagnostic_samples", "power_iterations"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"recipe {self.name!r}: {key} must be a positive integer, got {getattr(self, key)!r}")
        for key in ("train_limit", "test_limit"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"recipe {self.name!r}: {key} must be a positive integer or null, got {value!r}")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1:
            raise ValueError(f"recipe {self.name!r}: lr must be a number in (0, 1), got {self.lr!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"recipe {self.name!r}: schedule must be one of {', '.join(SCHEDULES)}, "
                             f"got {self.schedule!r}")
        self.radii = tuple(float(r) for r in self.radii)

    def lr_at(self, progress: float) -> float:
        """The learning rate after a fraction ``progress`` in [0, 1] of the training steps."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = [f.name for f in dataclasses.fields(Recipe)]


def _recipe_files() -> dict[str, Path]:
    folder = resources.files(__package__) / "recipes"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def list_recipes() -> list[str]:
    """Names of the recipes shipped with the package."""
    return sorted(_recipe_files())


def load_recipe(name_or_path: str | Path, **overrides: Any) -> Recipe:
    """A shipped recipe by name, or a YAML file by path, with ``overrides`` (``None`` values ignored) applied."""
    path = Path(name_or_path)
    if not path.suffix:
        shipped = _recipe_files()
        if str(name_or_path) not in shipped:
            raise unknown_name("recipe", str(name_or_path), shipped)
        path = shipped[str(name_or_path)]
    raw = read_yaml(path, "recipe") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"recipe {path} must be a mapping of settings, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    for key in raw:
        if key not in _FIELDS:
            raise unknown_name("setting", key, _FIELDS, context=f"recipe {path}: ", listing=False)
    missing = [f.name for f in dataclasses.fields(Recipe)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in raw]
    if missing:
        raise ValueError(f"recipe {path}: missing setting(s) {', '.join(missing)}")
    return Recipe(**raw)
