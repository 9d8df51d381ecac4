"""otnn-plugin: Optimal-Transport Neural Networks for timm, Captum, Quantus and Hugging Face datasets.

Importing the package registers the OTNN and unconstrained architectures as timm models
(``timm.list_models('otnn_*')``). Reference: Serrurier et al., "On the explainable properties of 1-Lipschitz
Neural Networks: An Optimal Transport Perspective", arXiv:2206.06854.
"""
import importlib

from . import models
from .lipschitz import explaining, input_gradient_norms, is_otnn, layer_operator_norms, lipschitz_report
from .models import export_vanilla

__version__ = "0.1.0"

#: Public names whose modules load on first use, so that ``import otnn_plugin`` stays light: a function or class
#: and the module that defines it, or a subpackage and ``None``.
_LAZY = {
    "create_loss": "losses", "list_losses": "losses", "explain": "explainers",
    "data": None, "evaluate": None, "explainers": None, "metrics": None,
}


def __getattr__(name: str):
    if name in _LAZY:
        module = _LAZY[name]
        if module is None:
            return importlib.import_module(f"{__name__}.{name}")
        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "create_loss",
    "data",
    "evaluate",
    "explain",
    "export_vanilla",
    "explainers",
    "explaining",
    "input_gradient_norms",
    "is_otnn",
    "layer_operator_norms",
    "lipschitz_report",
    "list_losses",
    "metrics",
    "models",
]
