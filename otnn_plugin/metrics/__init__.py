"""XAI metrics of the paper that Quantus 0.6.0 lacks, as ``quantus.Metric`` subclasses computed in batched torch.

* :class:`JPEGComplexity` (Sec. 5.1.1, Table 12), :class:`ExplanationDistance` (Table 2)
* :class:`Deletion`, :class:`Insertion` (Tables 1, 10), :class:`MuFidelity` (Table 3)
* :class:`RobustnessSr` (Table 11), :class:`Stability` (Table 4)
* :func:`explanation_distance`: relative L2, L2 and ``1 - ρ`` between batches of explanations, as plain torch.

Each metric class registers itself with ``@register_metric``; :func:`list_metrics` names them all. They load on
first use (``otnn_plugin.metrics.Deletion`` imports every metric module), so that this package and
``otnn_plugin.metrics.distance`` import without Quantus.
"""
from .._registry import Registry, import_submodules
from .distance import explanation_distance

__all__ = ["METRICS", "explanation_distance", "list_metrics", "register_metric"]

#: Our metric classes by class name, filled by importing every module of this package.
METRICS: Registry[type] = Registry("metric", load=import_submodules(__name__))
register_metric = METRICS.register


def list_metrics() -> list[str]:
    """The names of our metric classes, sorted (imports the metric modules, hence Quantus)."""
    return METRICS.names()


def __getattr__(name: str) -> type:
    if not name.startswith("_") and name in METRICS:
        return METRICS.get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
