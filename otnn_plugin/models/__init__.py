"""timm model entrypoints: importing this package registers every OTNN and unconstrained architecture, and the
linear control."""
from .export import export_vanilla
from .linear import LinearClassifier
from .mlp import MLP
from .vgg import VGGNet, VGGSpec

__all__ = ["LinearClassifier", "MLP", "VGGNet", "VGGSpec", "export_vanilla"]
