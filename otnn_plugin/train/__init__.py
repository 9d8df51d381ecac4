"""The thin trainer: recipes, the training loop, checkpoints and registry export."""
from .recipe import Recipe, list_recipes, load_recipe
from .trainer import TrainResult, prepare, train

__all__ = ["Recipe", "TrainResult", "list_recipes", "load_recipe", "prepare", "train"]
