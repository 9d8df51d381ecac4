"""Training recipes: small YAML files, one per paper setting or CPU budget (paper appendix A.2.3)."""
from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from .._names import unknown_name
from ..data.transforms import describe_augmentations
from .._validation import DatasetName, NonNegativeInt, PositiveInt, Settings, check_keys, one_of, validated
from .precision import PRECISIONS
from .._yaml import read_yaml

__all__ = ["Recipe", "load_recipe", "list_recipes", "SCHEDULES"]

#: Learning-rate schedules: the paper's ``constant`` rate, or a ``cosine`` decay to 0.
SCHEDULES = ("constant", "cosine")


def _trainable_models() -> list[str]:
    import timm

    return timm.list_models(["otnn_*", "unconstrained_*", "linear_*"])


def _losses() -> list[str]:
    from ..losses import list_losses
    from .objectives import CROSS_ENTROPY_LOSSES

    return [*list_losses(), *CROSS_ENTROPY_LOSSES]


def _file_schema(schema: dict[str, Any]) -> None:
    """A recipe file may leave out its name (the file's)."""
    schema["required"].remove("name")


class Recipe(Settings):
    """What to train, on what, with which loss and optimiser (Adam, as in the paper).

    ``power_iterations`` is the number of power-iteration steps each spectral layer runs per training forward
    (deel-torchlip runs 1; large learning rates need more, see :mod:`otnn_plugin.spectral`). ``weight_decay`` makes
    the optimiser AdamW (decoupled decay, not in the paper; for twins that overfit). ``schedule`` is the
    paper's ``constant`` learning rate or a ``cosine`` decay from ``lr`` to 0 over the run, step by step. A pydantic
    model: building one in Python runs the checks a YAML file gets; ``otnn schema recipe`` prints its JSON Schema.
    """

    model_config = Settings.model_config | {"json_schema_extra": _file_schema}

    name: str = Field(description="default: the file's name")
    model: Annotated[str, one_of("model", _trainable_models, listing=False)] = Field(
        description="an otnn_*, unconstrained_* or linear_* (control) timm model")
    dataset: DatasetName
    loss: Annotated[str, one_of("loss", _losses)] = Field(
        description="an hKR loss (otnn_plugin.list_losses()), cross_entropy or binary_cross_entropy")
    epochs: PositiveInt
    lr: float = Field(gt=0, lt=1, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, lt=1, description="decoupled weight decay (AdamW); 0, the paper's Adam")
    batch_size: PositiveInt = 128
    model_args: dict[str, Any] = Field(default_factory=dict, description="timm.create_model arguments")
    dataset_args: dict[str, Any] = Field(default_factory=dict, description="options of the dataset's loader")
    loss_args: dict[str, Any] = Field(default_factory=dict, description="arguments of the loss")
    augment: bool = Field(False, description=f"augment the training images ({describe_augmentations()})")
    precision: Annotated[str, one_of("precision", lambda: PRECISIONS)] = Field(
        "fp32", description="fp32, or bf16 autocast (refused where it breaks an OTNN's bound)")
    seed: NonNegativeInt = 0
    train_limit: PositiveInt | None = Field(None, description="train on a seeded subset of this many images")
    test_limit: PositiveInt | None = Field(None, description="score on a seeded subset of this many images")
    radii: tuple[float, ...] = Field((0.1, 0.25, 0.5), description="L2 radii of the certified accuracy")
    grad_norm_samples: PositiveInt = 64
    diagnostic_samples: PositiveInt = 256
    power_iterations: PositiveInt = 1
    schedule: Annotated[str, one_of("schedule", lambda: SCHEDULES)] = Field("constant", description="constant or cosine")
    registry_name: str | None = None
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_keys(data, cls.model_fields)
        return data

    def lr_at(self, progress: float) -> float:
        """The learning rate after a fraction ``progress`` in [0, 1] of the training steps."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr

    def updated(self, **changes: Any) -> Recipe:
        """A validated copy with ``changes`` applied."""
        return validated(Recipe, {**self.model_dump(), **changes}, f"recipe {self.name}: ")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


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
    return validated(Recipe, raw, f"recipe {path}: ")
