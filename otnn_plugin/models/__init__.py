"""timm model entrypoints: importing this package registers every OTNN and unconstrained architecture."""
from .export import export_vanilla
from .mlp import MLP
from .vgg import VGGNet, VGGSpec

__all__ = ["MLP", "VGGNet", "VGGSpec", "export_vanilla"]
