"""otnn-plugin: Optimal-Transport Neural Networks for timm, Captum, Quantus and Hugging Face datasets.

Importing the package registers the OTNN and unconstrained architectures as timm models
(``timm.list_models('otnn_*')``). Reference: Serrurier et al., "On the explainable properties of 1-Lipschitz
Neural Networks: An Optimal Transport Perspective", arXiv:2206.06854.
"""
from . import models
from .lipschitz import explaining, input_gradient_norms, is_otnn, layer_operator_norms, lipschitz_report
from .models import export_vanilla

__version__ = "0.1.0"

__all__ = [
    "export_vanilla",
    "explaining",
    "input_gradient_norms",
    "is_otnn",
    "layer_operator_norms",
    "lipschitz_report",
    "models",
]
