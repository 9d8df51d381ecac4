"""Distance between two explanation methods on the same inputs (paper Sec. 5.1.1, Table 2: Saliency vs SmoothGrad)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from quantus.helpers import utils
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface
from torch import Tensor

from . import register_metric
from .base import Network, TorchMetric
from .distance import Distance, check_distance, explanation_distance

__all__ = ["ExplanationDistance"]


@register_metric
class ExplanationDistance(TorchMetric):
    """Distance from the evaluated explanation ``a`` to a reference method's ``b``; lower means closer.

    ``distance``: ``"relative_l2"`` (default, ``||a - b|| / ||a||``), ``"spearman"`` (``1 - ρ``) or the raw ``"l2"``
    (``||a - b||``, which grows with the gradient norm: see :mod:`~otnn_plugin.metrics.distance`).
    ``reference_func`` follows Quantus's ``explain_func`` contract, ``reference_func(model=..., inputs=...,
    targets=..., **reference_func_kwargs)`` with numpy inputs; its explanations go through the same ``abs`` and
    ``normalise`` options as the evaluated ones. For Table 2, evaluate Saliency with a ``smoothgrad`` reference
    (absolute, as Saliency is).
    """

    name = "Explanation Distance"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.NONE

    def __init__(
        self,
        reference_func: Callable[..., Any],
        reference_func_kwargs: dict[str, Any] | None = None,
        distance: Distance = "relative_l2",
        **kwargs,
    ):
        if not callable(reference_func):
            raise ValueError(f"reference_func must be an explain function, got {type(reference_func).__name__}")
        check_distance(distance)
        super().__init__(**kwargs)
        self.reference_func, self.reference_func_kwargs = reference_func, dict(reference_func_kwargs or {})
        self.distance = distance

    def score(self, net: Network, x: Tensor, y: Tensor, a: Tensor) -> Tensor:
        model = net.wrapped.get_model() if isinstance(net.wrapped, ModelInterface) else net.wrapped
        inputs = x.cpu().numpy()
        targets = y.cpu().numpy()
        reference = self.reference_func(model=model, inputs=inputs, targets=targets, **self.reference_func_kwargs)
        reference = torch.as_tensor(reference).detach().cpu().numpy()
        reference = utils.expand_attribution_channel(reference, inputs)
        if self.normalise:
            reference = self.normalise_func(reference)
        if self.abs:
            reference = np.abs(reference)
        return explanation_distance(a, torch.as_tensor(reference, dtype=a.dtype, device=x.device), self.distance)
