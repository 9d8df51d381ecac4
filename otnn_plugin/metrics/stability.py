"""Stability of explanations (Yeh et al. 2019; paper Sec. 5.1.2, Table 4, radius 0.3 in App. A.4.2)."""
from __future__ import annotations

from typing import Literal

import torch
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from torch import Tensor

from . import register_metric
from .base import Network, SeededMetric
from .distance import Distance, check_distance, explanation_distance

__all__ = ["NEIGHBOURHOODS", "Neighbourhood", "Stability", "sample_ball", "sample_neighbours"]

Neighbourhood = Literal["l2_ball", "uniform_pixel"]
NEIGHBOURHOODS: tuple[str, ...] = ("l2_ball", "uniform_pixel")


def sample_ball(n: int, shape: tuple[int, ...], radius: float, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points drawn uniformly in the L2 ball of ``radius`` in ``R^shape``, on the CPU, shape ``(n, *shape)``.

    A Gaussian direction scaled to a radius ``radius * U ** (1 / d)``, ``d`` the dimension, ``U`` uniform on [0, 1].
    """
    directions = torch.randn((n, *shape), generator=generator).flatten(1)
    lengths = radius * torch.rand((n, 1), generator=generator) ** (1 / directions.shape[1])
    return (directions * lengths / directions.norm(dim=1, keepdim=True)).view(n, *shape)


def sample_neighbours(
    n: int, shape: tuple[int, ...], radius: float, neighbourhood: Neighbourhood,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` offsets ``δ`` of a :class:`Stability` neighbourhood, on the CPU, shape ``(n, *shape)``."""
    if neighbourhood == "uniform_pixel":
        return radius * torch.rand((n, *shape), generator=generator)
    return sample_ball(n, shape, radius, generator)


@register_metric
class Stability(SeededMetric):
    """Mean distance between the explanation at ``x`` and at ``nb_samples`` neighbours ``x + δ``; lower is better.

    ``neighbourhood`` says how ``δ`` is drawn; A.4.2 says "random samples drawn in a ball of radius 0.3":

    * ``"l2_ball"`` (default): uniformly in the L2 ball ``||δ||_2 <= radius``. With 0.3 that is a small move: about
      0.01 per pixel on Fashion-MNIST and 0.002 (half a grey level) per value on CelebA at 109x89.
    * ``"uniform_pixel"``: ``δ_i ~ U(0, radius)`` independently for every pixel and channel, as in the paper's
      tool: Xplique's ``AverageStability`` draws ``tf.random.uniform(shape, 0, radius)`` since deel-ai/xplique PR
      #83 (January 2022; before it the radius was ignored). ``||δ||_2`` is then close to ``radius * sqrt(d / 3)``,
      ``d`` the number of values: 4.9 on Fashion-MNIST and 29.5 on CelebA at 109x89 for 0.3, and every value moves
      up by ``radius / 2`` on average.

    ``distance``: ``"relative_l2"`` (default, ``||a - b|| / ||a||`` with ``a`` the explanation at ``x``),
    ``"spearman"`` (``1 - ρ``) or ``"l2"`` (``||a - b||``, in the maps' units, so it grows with the gradient norm),
    see :func:`explanation_distance`; Xplique's ``"l2"`` summed squared differences. The neighbours are explained
    by the call's ``explain_func`` in chunks of ``batch_size``, with Quantus's own pre-processing (``abs``,
    ``normalise``; :meth:`TorchMetric.explain_inputs`), so both explanations are treated alike. Yeh et al.'s
    sensitivity takes the maximum over the neighbourhood; the paper, like Xplique's ``AverageStability``, the mean.
    """

    name = "Stability"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.ROBUSTNESS

    def __init__(
        self,
        radius: float = 0.3,
        nb_samples: int = 50,
        distance: Distance = "relative_l2",
        neighbourhood: Neighbourhood = "l2_ball",
        **kwargs,
    ):
        if not radius > 0 or nb_samples < 1:
            raise ValueError(f"radius must be positive and nb_samples at least 1, got {radius} and {nb_samples}")
        if neighbourhood not in NEIGHBOURHOODS:
            raise ValueError(f"unknown neighbourhood {neighbourhood!r}: use one of {NEIGHBOURHOODS}")
        check_distance(distance)
        super().__init__(**kwargs)
        self.radius, self.nb_samples, self.distance = radius, nb_samples, distance
        self.neighbourhood = neighbourhood

    def __call__(self, *args, explain_func=None, **kwargs) -> list[float]:
        if explain_func is None:
            raise ValueError("Stability explains points around each input: pass explain_func (and "
                             "explain_func_kwargs) to the call")
        return super().__call__(*args, explain_func=explain_func, **kwargs)

    def score(self, net: Network, x: Tensor, y: Tensor, a: Tensor) -> Tensor:
        sample = torch.arange(len(x), device=x.device).repeat_interleave(self.nb_samples)
        noise = sample_neighbours(len(sample), tuple(x.shape[1:]), self.radius, self.neighbourhood, self.generator)
        noise = noise.to(x.device)
        distances = torch.empty(len(sample), device=x.device)
        for start in range(0, len(sample), self.batch_size):
            rows = slice(start, start + self.batch_size)
            owner = sample[rows]
            explained = self.explain_inputs(net, x[owner] + noise[rows], y[owner]).to(a.dtype)
            distances[rows] = explanation_distance(a[owner], explained, self.distance)
        return distances.view(len(x), self.nb_samples).mean(1)
