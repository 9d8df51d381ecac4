"""XAI metrics of the paper that Quantus 0.6.0 lacks, as ``quantus.Metric`` subclasses computed in batched torch.

* :class:`JPEGComplexity` (Sec. 5.1.1, Table 12), :class:`ExplanationDistance` (Table 2)
* :class:`Deletion`, :class:`Insertion` (Tables 1, 10), :class:`MuFidelity` (Table 3)
* :class:`RobustnessSr` (Table 11), :class:`Stability` (Table 4)
* :func:`explanation_distance`: L2 and ``1 - ρ`` between batches of explanations, as plain torch.

Metric classes load on first use, so that ``otnn_plugin.metrics.distance`` can be imported without Quantus.
"""
import importlib

_LAZY = {
    "CausalFidelity": "fidelity",
    "Deletion": "fidelity",
    "Insertion": "fidelity",
    "MuFidelity": "fidelity",
    "RobustnessSr": "robustness",
    "Stability": "stability",
    "ExplanationDistance": "comparison",
    "JPEGComplexity": "jpeg",
    "explanation_distance": "distance",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)
