"""Fidelity metrics of the paper (App. A.4.2; Tables 1, 3 and 10): Deletion, Insertion and µFidelity.

All three set parts of the input to a baseline state and watch the model's output for the target: an index into
the output vector (the class of a classifier, the attribute of a multilabel head, 0 for a single-output OTNN).
"""
from __future__ import annotations

from typing import ClassVar, Literal

import torch
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from torch import Tensor

from ..lipschitz import explaining
from . import register_metric
from .base import Network, Score, SeededMetric
from .perturbation import (
    Baseline,
    blended_scores,
    check_baseline,
    grid_cells,
    make_baseline,
    mean_trapezoid,
    step_counts,
    top_pixel_masks,
)
from .distance import pearson_correlation, spearman_correlation

__all__ = ["Deletion", "Insertion", "MuFidelity"]


class CausalFidelity(SeededMetric):
    """Deletion and Insertion (Petsiuk et al. 2018) as Xplique defines them; the paper used Xplique (App. A.4).

    Pixels are ranked by channel-mean attribution. At step ``k`` the ``n_k`` most important pixels, all channels,
    are set to the baseline (Deletion) or copied from ``x`` into the baseline (Insertion), with
    ``n_k = floor(k * floor(H * W * max_percentage) / steps)``, ``k = 0 .. steps``. The score at each step is the
    model's output for the target, read as ``score`` says (:meth:`Network.select`): ``"probability"`` (default, as
    Petsiuk et al.) is its softmax for a multiclass model and its sigmoid for one output or the explained side
    of a label, ``"logit"`` the raw output. A sample's score is the area under its curve per step,
    ``mean_k (s_k + s_{k+1}) / 2``. The paper's Fashion-MNIST values (Tables 1, 10) all lie in [0, 1], so they are
    probabilities; its CelebA values (3 to 12) are raw outputs.

    ``baseline``: ``"zero"``, a number, or ``"uniform"``: per-pixel noise over ``data_range`` (one noise image per
    sample, drawn from ``seed``). All ``B * (steps + 1)`` inputs are forwarded ``batch_size`` at a time.
    """

    evaluation_category = EvaluationCategory.FAITHFULNESS
    inserting: ClassVar[bool]

    def __init__(
        self,
        steps: int = 10,
        max_percentage: float = 1.0,
        baseline: Baseline = "zero",
        data_range: tuple[float, float] = (0.0, 1.0),
        score: Score = "probability",
        **kwargs,
    ):
        if steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        if not 0.0 < max_percentage <= 1.0:
            raise ValueError(f"max_percentage must be in (0, 1], got {max_percentage}")
        if score not in ("probability", "logit"):
            raise ValueError(f"unknown score {score!r}: use 'probability' or 'logit'")
        check_baseline(baseline, data_range)
        super().__init__(**kwargs)
        self.steps, self.max_percentage = steps, max_percentage
        self.baseline, self.data_range, self.score_type = baseline, data_range, score

    def curve(self, model, x_batch, y_batch, a_batch) -> Tensor:
        """The score after each step, ``(B, steps + 1)``; ``model`` a torch module or a Quantus wrapper."""
        net, x, y, a = self.tensors(model, x_batch, y_batch, a_batch)
        with explaining(net.module):
            return self._curve(net, x, y, a)

    def score(self, net: Network, x: Tensor, y: Tensor, a: Tensor) -> Tensor:
        return mean_trapezoid(self._curve(net, x, y, a))

    def _curve(self, net: Network, x: Tensor, y: Tensor, a: Tensor) -> Tensor:
        counts = step_counts(x.shape[-2] * x.shape[-1], self.steps, self.max_percentage)
        baseline = make_baseline(x, self.baseline, self.data_range, self.generator)
        inside, outside = (x, baseline) if self.inserting else (baseline, x)
        masks = top_pixel_masks(a, counts)
        return blended_scores(net, inside, outside, masks, y, self.batch_size, score=self.score_type)


@register_metric
class Deletion(CausalFidelity):
    """Deletion: the most important pixels go to the baseline first; lower is better (definition: CausalFidelity)."""

    name = "Deletion"
    score_direction = ScoreDirection.LOWER
    inserting = False


@register_metric
class Insertion(CausalFidelity):
    """Insertion: the most important pixels come back from the baseline first; higher is better (CausalFidelity)."""

    name = "Insertion"
    score_direction = ScoreDirection.HIGHER
    inserting = True


@register_metric
class MuFidelity(SeededMetric):
    """µFidelity (Bhatt et al. 2020, def. 3; paper App. A.4.2 and Table 3); higher is better.

    ``Corr_S ( sum_{i in S} a_i , f(x) - f(x[x_S = x_0]) )`` over ``nb_samples`` random subsets ``S``, each made of
    ``round(subset_percent * n_cells)`` cells of a ``grid_size`` x ``grid_size`` grid (paper: 20 x 20 and 20 %;
    ``None``: one cell per pixel). ``a`` is summed over the channels and pixels of a cell; ``f`` is the model
    output for the target. ``correlation``: ``"spearman"`` (Xplique, the default) or ``"pearson"`` (Bhatt et al.,
    Quantus's ``FaithfulnessCorrelation``); an undefined correlation (constant scores) counts as 0, as in Xplique.
    Baselines as for :class:`Deletion`; a ``"uniform"`` one is drawn once per sample and shared by its subsets.

    Deviation from Xplique: every subset has exactly the same number of cells, as in Bhatt et al.'s definition,
    where Xplique drops each cell independently with probability ``subset_percent``.
    """

    name = "MuFidelity"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS

    def __init__(
        self,
        grid_size: int | None = 20,
        subset_percent: float = 0.2,
        nb_samples: int = 200,
        correlation: Literal["spearman", "pearson"] = "spearman",
        baseline: Baseline = "zero",
        data_range: tuple[float, float] = (0.0, 1.0),
        **kwargs,
    ):
        if not 0.0 < subset_percent < 1.0:
            raise ValueError(f"subset_percent must be in (0, 1), got {subset_percent}")
        if nb_samples < 2:
            raise ValueError(f"nb_samples must be at least 2 to measure a correlation, got {nb_samples}")
        if correlation not in ("spearman", "pearson"):
            raise ValueError(f"unknown correlation {correlation!r}: use 'spearman' or 'pearson'")
        check_baseline(baseline, data_range)
        super().__init__(**kwargs)
        self.grid_size, self.subset_percent, self.nb_samples = grid_size, subset_percent, nb_samples
        self.correlation, self.baseline, self.data_range = correlation, baseline, data_range

    def correlations(self, model, x_batch, y_batch, a_batch, removed: Tensor) -> Tensor:
        """µFidelity for given subsets: ``removed`` ``(B, S, n_cells)`` booleans, True for cells set to baseline."""
        net, x, y, a = self.tensors(model, x_batch, y_batch, a_batch)
        with explaining(net.module):
            return self._correlations(net, x, y, a, torch.as_tensor(removed, device=net.device).bool())

    def score(self, net: Network, x: Tensor, y: Tensor, a: Tensor) -> Tensor:
        n_cells, _ = grid_cells(x.shape[-2], x.shape[-1], self.grid_size, x.device)
        subset_size = round(self.subset_percent * n_cells)
        if not 1 <= subset_size < n_cells:
            raise ValueError(f"subset_percent {self.subset_percent} of {n_cells} cells gives subsets of "
                             f"{subset_size} cells: choose it so that 1 <= subsets < {n_cells}")
        order = torch.rand((len(x), self.nb_samples, n_cells), generator=self.generator).argsort(-1).to(x.device)
        removed = torch.zeros(order.shape, dtype=torch.bool, device=x.device)
        removed.scatter_(-1, order[..., :subset_size], True)
        return self._correlations(net, x, y, a, removed)

    def _correlations(self, net: Network, x: Tensor, y: Tensor, a: Tensor, removed: Tensor) -> Tensor:
        n_cells, cell_of_pixel = grid_cells(x.shape[-2], x.shape[-1], self.grid_size, x.device)
        if removed.ndim != 3 or removed.shape[0] != len(x) or removed.shape[2] != n_cells:
            raise ValueError(f"removed has shape {tuple(removed.shape)}: expected (batch, subsets, {n_cells} cells)")
        baseline = make_baseline(x, self.baseline, self.data_range, self.generator)
        with torch.no_grad():
            score = net.target_scores(x, y)
        drops = score[:, None] - blended_scores(net, baseline, x, removed, y, self.batch_size, cell_of_pixel)
        cell_attributions = torch.zeros(len(x), n_cells, device=x.device)
        cell_attributions.index_add_(1, cell_of_pixel, a.sum(1).flatten(1))
        removed_attributions = torch.einsum("bsc,bc->bs", removed.to(a.dtype), cell_attributions)
        correlate = spearman_correlation if self.correlation == "spearman" else pearson_correlation
        return correlate(removed_attributions, drops)
