"""Is a network in the optimal-transport regime? Measured, not assumed.

The paper's explanation properties hold for an OTNN at the optimum of the hKR loss, where ``||grad f|| = 1``
almost everywhere (proof of Prop. 1). A 1-Lipschitz network far from it can behave like a linear classifier, and
a linear classifier passes several explanation metrics trivially. :func:`transport_diagnostics` measures, on a
batch of test images:

* ``mean_grad_norm``: mean ``||grad_x f_h(x)||`` over the explained heads (1 in the regime).
* ``prop2_ratio``: median ``|f_h(x')| / |f_h(x)|`` for the counterfactual ``x' = x - f_h(x) grad f_h(x)``
  (Prop. 2: ``x'`` lies on the decision boundary, so the ratio is 0 in the regime); per head for multilabel data.
* ``taylor_error``: median ``||f(x_j) - f(x_i) - J(x_i)(x_j - x_i)|| / ||f(x_j) - f(x_i)||`` over pairs of test
  images: how well one image's first-order expansion predicts the outputs at another (0 for a linear model).
* ``gradient_cosine``: mean cosine between the explained head's gradients at two images of the same class
  (1 for a linear model, whose saliency map is the same everywhere).

The explained head is the true class for multiclass data (each head is a one-vs-all classifier, Eq. 4) and every
label head for multilabel data.
"""
from __future__ import annotations

import torch
from torch import nn

from .lipschitz import explaining

__all__ = ["transport_diagnostics", "head_gradients"]


def _jacobian(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs ``(N, K)`` and input gradients of every head ``(N, K, *x.shape[1:])`` (one backward per head)."""
    x = x.detach().clone().requires_grad_(True)
    out = model(x).reshape(len(x), -1)
    grads = [torch.autograd.grad(out[:, k].sum(), x, retain_graph=k + 1 < out.shape[1])[0]
             for k in range(out.shape[1])]
    return out.detach(), torch.stack(grads, dim=1)


def head_gradients(outputs: torch.Tensor, jacobian: torch.Tensor, targets: torch.Tensor, task: str
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The explained heads' values ``(N, H)``, gradients ``(N, H, ...)`` and grouping labels ``(N, H)``."""
    if task == "multiclass":
        index = targets.view(-1, 1)
        grads = jacobian[torch.arange(len(targets), device=targets.device), targets].unsqueeze(1)
        return outputs.gather(1, index), grads, index
    return outputs, jacobian, (targets.reshape(outputs.shape) > 0.5).long()


def _median_ratio(model: nn.Module, x: torch.Tensor, values: torch.Tensor, grads: torch.Tensor,
                  task: str, targets: torch.Tensor) -> torch.Tensor:
    """``|f_h(x - f_h grad f_h)| / |f_h(x)|`` for every sample and explained head ``(N, H)``."""
    ratios = []
    with torch.no_grad():
        for h in range(values.shape[1]):
            shifted = x - values[:, h].view(-1, *[1] * (x.dim() - 1)) * grads[:, h]
            out = model(shifted).reshape(len(x), -1)
            moved = out.gather(1, targets.view(-1, 1)).squeeze(1) if task == "multiclass" else out[:, h]
            ratios.append(moved.abs() / values[:, h].abs().clamp_min(1e-12))
    return torch.stack(ratios, dim=1)


def _group_cosine(grads: torch.Tensor, groups: torch.Tensor) -> float:
    """Mean cosine between the gradients of consecutive samples of the same group, over every head."""
    cosines = []
    for h in range(grads.shape[1]):
        order = torch.argsort(groups[:, h], stable=True)
        flat, labels = grads[order, h].flatten(1), groups[order, h]
        same = labels[1:] == labels[:-1]
        cosines.append(nn.functional.cosine_similarity(flat[1:], flat[:-1], dim=1)[same])
    return torch.cat(cosines).mean().item()


def transport_diagnostics(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, task: str) -> dict:
    """The four transport-regime figures above on one batch ``x`` (eval mode; ``x`` on the model's device)."""
    if len(x) < 2:
        raise ValueError(f"transport diagnostics need at least 2 samples, got {len(x)}")
    with explaining(model):
        outputs, jacobian = _jacobian(model, x)
        values, grads, groups = head_gradients(outputs, jacobian, targets, task)
        ratios = _median_ratio(model, x, values, grads, task, targets)
        step = (x.roll(-1, 0) - x).flatten(1)
        predicted = outputs + torch.einsum("nkd,nd->nk", jacobian.flatten(2), step)
        actual = outputs.roll(-1, 0)
        taylor = (actual - predicted).norm(dim=1) / (actual - outputs).norm(dim=1).clamp_min(1e-12)
    result = {
        "mean_grad_norm": grads.flatten(2).norm(dim=2).mean().item(),
        "prop2_ratio": ratios.median().item(),
        "taylor_error": taylor.median().item(),
        "gradient_cosine": _group_cosine(grads, groups),
        "samples": len(x),
    }
    if task != "multiclass":
        result["prop2_ratio_per_head"] = [round(v, 4) for v in ratios.median(dim=0).values.tolist()]
    return result
