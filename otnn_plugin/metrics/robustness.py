"""Robustness-Sr (Hsieh et al. 2021; paper App. A.4.2, Table 11): how easily the top features alone flip a decision."""
from __future__ import annotations

from typing import Literal

import torch
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from torch import Tensor

from ..lipschitz import explaining
from . import register_metric
from .base import Network, TorchMetric, check_targets
from .perturbation import mean_trapezoid, step_counts, top_pixel_masks

__all__ = ["RobustnessSr"]


@register_metric
class RobustnessSr(TorchMetric):
    """Robustness-Sr: the smallest L2 perturbation of the top pixels that changes the decision; lower is better.

    For ``r = k / steps``, ``k = 1 .. steps``, only the ``floor(r * H * W)`` pixels of highest channel-mean
    attribution (all their channels) may move. The decision is the sign of the target output for a single-output or
    multilabel head (``decision="sign"``, the side it is on at ``x``) and otherwise (``"argmax"``) whether the
    explained class ``y`` wins the argmax: the attack is on the class the explanation is for, as ``min ||δ|| s.t.
    f(x + δ) != y`` (A.4.2), not on the prediction, so a sample already predicted as another class has radius 0 at
    every fraction. ``None`` picks ``"sign"`` for one output and ``"argmax"`` for more. A sample's score is the area
    under its radii, ``mean_k (ε_k + ε_{k+1}) / 2`` over ``ε_1 .. ε_steps``. The score depends on the network's own
    robustness, so it compares explanations of one network only (App. A.4.2).

    The search is deterministic and bounded. The radius is bisected ``n_bisections`` times in ``[0, max_radius]``,
    assuming that a larger radius flips at least as easily. At each radius ``ε``, a projected gradient descent of
    ``n_iterations`` steps from ``δ = 0`` lowers the decision margin (``±f_t`` for sign, ``f_c - max_{j != c} f_j``
    for argmax): normalised gradient steps of length ``2.5 ε / n_iterations`` on the allowed pixels, projected back
    onto the ball ``||δ||_2 <= ε``; the radius succeeds when the margin turns negative at some step. The result is the
    smallest radius that succeeded, bracketed to ``max_radius / 2 ** n_bisections``, or ``max_radius`` when none did
    (as for an empty set of pixels). Inputs are not clipped to the data range. The searches of all samples and
    fractions, ``B * steps`` of them, run in lockstep, ``batch_size`` at a time, and each leaves the batch as soon as
    it flips; a search's radius does not depend on the others in its batch.
    """

    name = "Robustness-Sr"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.FAITHFULNESS

    def __init__(
        self,
        steps: int = 10,
        max_radius: float = 32.0,
        n_bisections: int = 10,
        n_iterations: int = 20,
        decision: Literal["sign", "argmax"] | None = None,
        **kwargs,
    ):
        if steps < 2 or n_bisections < 1 or n_iterations < 1:
            raise ValueError(f"steps must be at least 2 (an area needs two radii), n_bisections and n_iterations "
                             f"positive; got {steps}, {n_bisections} and {n_iterations}")
        if not max_radius > 0:
            raise ValueError(f"max_radius must be positive, got {max_radius}")
        if decision not in (None, "sign", "argmax"):
            raise ValueError(f"unknown decision {decision!r}: use 'sign', 'argmax' or None")
        super().__init__(**kwargs)
        self.steps, self.max_radius, self.decision = steps, max_radius, decision
        self.n_bisections, self.n_iterations = n_bisections, n_iterations

    def radii(self, model, x_batch, y_batch, a_batch) -> Tensor:
        """The smallest flipping radius for each relevant fraction ``k / steps``, shape ``(B, steps)``."""
        net, x, y, a = self.tensors(model, x_batch, y_batch, a_batch)
        with explaining(net.module):
            return self._radii(net, x, y, a)

    def score(self, net: Network, x: Tensor, y: Tensor, a: Tensor) -> Tensor:
        return mean_trapezoid(self._radii(net, x, y, a))

    def _radii(self, net: Network, x: Tensor, y: Tensor, a: Tensor) -> Tensor:
        counts = step_counts(x.shape[-2] * x.shape[-1], self.steps)[1:]
        masks = top_pixel_masks(a, counts).flatten(0, 1).view(-1, 1, *x.shape[-2:]).to(x.dtype)
        sample = torch.arange(len(x), device=x.device).repeat_interleave(self.steps)
        with torch.no_grad():
            outputs = net(x)
        decision = self.decision or ("sign" if outputs.shape[1] == 1 else "argmax")
        if decision == "argmax" and outputs.shape[1] == 1:
            raise ValueError("decision='argmax' needs a model with several outputs: use 'sign' for a single output")
        check_targets(y, outputs.shape[1])
        side = torch.where(outputs.gather(1, y[:, None]).squeeze(1) >= 0, 1.0, -1.0) if decision == "sign" else None
        holds = _margin(outputs, y, side) >= 0  # False: predicted as another class than y, radius 0
        radii = torch.zeros(len(sample), device=x.device)
        searched = holds[sample].nonzero().squeeze(1)
        for start in range(0, len(searched), self.batch_size):
            rows = searched[start:start + self.batch_size]
            owner = sample[rows]
            radii[rows] = self._bisect(net, x[owner], masks[rows], y[owner], None if side is None else side[owner])
        return radii.view(len(x), self.steps)

    def _bisect(self, net: Network, x: Tensor, mask: Tensor, target: Tensor, side: Tensor | None) -> Tensor:
        low = torch.zeros(len(x), device=x.device)
        high = torch.full_like(low, self.max_radius)
        for _ in range(self.n_bisections):
            radius = (low + high) / 2
            flipped = self._attack(net, x, mask, target, side, radius)
            high, low = torch.where(flipped, radius, high), torch.where(flipped, low, radius)
        return high

    @torch.enable_grad()
    def _attack(self, net: Network, x: Tensor, mask: Tensor, target: Tensor, side: Tensor | None, radius: Tensor
                ) -> Tensor:
        """Projected gradient descent on the margin in the masked ball of ``radius``: True where the decision flips.

        A search that has flipped is done: later steps only move the searches still running.
        """
        view = (-1,) + (1,) * (x.ndim - 1)
        steps = 2.5 * radius / self.n_iterations
        delta = torch.zeros_like(x)
        flipped = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        running = torch.arange(len(x), device=x.device)
        for _ in range(self.n_iterations):
            moving = delta[running].requires_grad_(True)
            margins = _margin(net(x[running] + moving), target[running], None if side is None else side[running])
            (grad,) = torch.autograd.grad(margins.sum(), moving)
            now = margins.detach() < 0
            flipped[running[now]] = True
            running, moving, grad = running[~now], moving.detach()[~now], grad[~now] * mask[running[~now]]
            if not len(running):
                return flipped
            moving = moving - steps[running].view(view) * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
            scale = radius[running] / moving.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta[running] = moving * scale.clamp(max=1.0).view(view)
        with torch.no_grad():
            side = None if side is None else side[running]
            flipped[running] = _margin(net(x[running] + delta[running]), target[running], side) < 0
        return flipped


def _margin(outputs: Tensor, target: Tensor, side: Tensor | None) -> Tensor:
    """Positive while the decision holds: ``side * f_target``, or ``f_c - max_{j != c} f_j`` when ``side`` is None."""
    own = outputs.gather(1, target[:, None]).squeeze(1)
    if side is not None:
        return side * own
    return own - outputs.scatter(1, target[:, None], float("-inf")).amax(1)
