"""Stability of explanations (Yeh et al. 2019; paper Sec. 5.1.2, Table 4, radius 0.3 in App. A.4.2)."""
from __future__ import annotations

import torch
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from torch import Tensor

from . import register_metric
from .base import Network, SeededMetric
from .distance import Distance, check_distance, explanation_distance

__all__ = ["Stability", "sample_ball"]


def sample_ball(n: int, shape: tuple[int, ...], radius: float, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points drawn uniformly in the L2 ball of ``radius`` in ``R^shape``, on the CPU, shape ``(n, *shape)``.

    A Gaussian direction scaled to a radius ``radius * U ** (1 / d)``, ``d`` the dimension, ``U`` uniform on [0, 1].
    """
    directions = torch.randn((n, *shape), generator=generator).flatten(1)
    lengths = radius * torch.rand((n, 1), generator=generator) ** (1 / directions.shape[1])
    return (directions * lengths / directions.norm(dim=1, keepdim=True)).view(n, *shape)


@register_metric
class Stability(SeededMetric):
    """Average distance between the explanation at ``x`` and at ``nb_samples`` points drawn uniformly in the L2 ball
    of ``radius`` around ``x`` (paper: 0.3); lower is better.

    ``distance``: ``"l2"`` (``||a - b||_2``) or ``"spearman"`` (``1 - ρ``), see :func:`explanation_distance`. The
    neighbours are explained by the call's ``explain_func`` in chunks of ``batch_size``, with Quantus's own
    pre-processing (``abs``, ``normalise``), so both explanations are treated alike. Yeh et al.'s sensitivity takes the
    maximum over the ball; the paper, like Xplique's ``AverageStability``, the mean. Xplique draws its neighbours in a
    small box (``[0, 1/d]`` per coordinate) and sums squared differences; this follows the paper's ball and distances.
    """

    name = "Stability"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.ROBUSTNESS

    def __init__(self, radius: float = 0.3, nb_samples: int = 50, distance: Distance = "l2", **kwargs):
        if not radius > 0 or nb_samples < 1:
            raise ValueError(f"radius must be positive and nb_samples at least 1, got {radius} and {nb_samples}")
        check_distance(distance)
        super().__init__(**kwargs)
        self.radius, self.nb_samples, self.distance = radius, nb_samples, distance

    def __call__(self, *args, explain_func=None, **kwargs) -> list[float]:
        if explain_func is None:
            raise ValueError("Stability explains points around each input: pass explain_func (and "
                             "explain_func_kwargs) to the call")
        return super().__call__(*args, explain_func=explain_func, **kwargs)

    def score(self, net: Network, x: Tensor, y: Tensor, a: Tensor) -> Tensor:
        sample = torch.arange(len(x), device=x.device).repeat_interleave(self.nb_samples)
        noise = sample_ball(len(sample), tuple(x.shape[1:]), self.radius, self.generator).to(x.device)
        distances = torch.empty(len(sample), device=x.device)
        for start in range(0, len(sample), self.batch_size):
            rows = slice(start, start + self.batch_size)
            owner = sample[rows]
            neighbours = (x[owner] + noise[rows]).cpu().numpy()
            explained = self.explain_batch(net.wrapped, neighbours, y[owner].cpu().numpy())
            explained = torch.as_tensor(explained, dtype=a.dtype, device=x.device)
            distances[rows] = explanation_distance(a[owner], explained, self.distance)
        return distances.view(len(x), self.nb_samples).mean(1)
