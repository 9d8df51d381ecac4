"""Explainers for OTNNs: the transport counterfactual (paper Sec. 3), RISE, and one Quantus explain function."""
from .explain import EXPLAIN_METHODS, explain
from .rise import Rise, rise_masks
from .transport import Counterfactual, TransportCounterfactual

__all__ = ["Counterfactual", "EXPLAIN_METHODS", "Rise", "TransportCounterfactual", "explain", "rise_masks"]
