"""Explainers for OTNNs: the transport counterfactual (paper Sec. 3), RISE, and one Quantus explain function."""
from .explain import EXPLAIN_METHODS, explain, register_explainer
from .rise import Rise, rise_masks
from .transport import Counterfactual, TransportCounterfactual

__all__ = ["Counterfactual", "EXPLAIN_METHODS", "Rise", "TransportCounterfactual", "explain", "register_explainer",
           "rise_masks"]
