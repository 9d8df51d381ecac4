"""Test-split scores each epoch: accuracy, per-label sensitivity/specificity (paper Table 9), certified robust
accuracy for OTNNs, and the mean input-gradient norm.

Certificates: an OTNN ``f`` is 1-Lipschitz in L2, so a binary or per-label decision ``sign f_l(x)`` cannot change
within radius ``|f_l(x)|`` (paper Sec. 2); a multiclass decision cannot change within
``(f_top(x) - f_second(x)) / sqrt(2)`` (``f_i - f_j`` is sqrt(2)-Lipschitz; 2 with disjoint heads, see
:func:`otnn_plugin.lipschitz.output_gap_lipschitz`).
"""
from __future__ import annotations

import torch
from torch import nn

from ..diagnostics import transport_diagnostics
from ..lipschitz import explaining, input_gradient_norms, is_otnn, output_gap_lipschitz

__all__ = ["correct_predictions", "evaluate", "test_diagnostics"]


def correct_predictions(outputs: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Booleans, ``(N,)`` or ``(N, L)`` for multilabel: argmax for classes, ``sign f`` for binary and labels."""
    if task == "multiclass":
        return outputs.argmax(1) == targets
    if task == "multilabel":
        return (outputs > 0) == (targets > 0.5)
    return torch.sign(outputs.reshape(-1)) == torch.sign(targets)


@torch.no_grad()
def _outputs(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, radii: tuple[float, ...],
             batch_size: int, grad_norm_samples: int, device: torch.device) -> dict:
    """Scores of ``model`` on ``(x, y)``; certified accuracies only for OTNNs."""
    if grad_norm_samples < 1 or len(x) == 0:
        raise ValueError(f"scores need samples: got {len(x)} samples and grad_norm_samples={grad_norm_samples} (the "
                         "input-gradient norm is averaged over that many, at least 1)")
    with explaining(model):
        out = _outputs(model, x, batch_size, device)
        correct = correct_predictions(out, y, task)
        if task == "multiclass":
            top2 = out.topk(2, dim=1).values
            radius = (top2[:, 0] - top2[:, 1]) / output_gap_lipschitz(model)
            scores = {"accuracy": correct.float().mean().item()}
        elif task == "multilabel":
            positive, predicted = y > 0.5, out > 0
            radius = out.abs()
            sensitivity = (predicted & positive).sum(0) / positive.sum(0).clamp_min(1)
            specificity = (~predicted & ~positive).sum(0) / (~positive).sum(0).clamp_min(1)
            scores = {
                "accuracy": correct.float().mean().item(),
                "mean_sensitivity": sensitivity.mean().item(),
                "mean_specificity": specificity.mean().item(),
                "sensitivity": [round(v, 4) for v in sensitivity.tolist()],
                "specificity": [round(v, 4) for v in specificity.tolist()],
            }
        else:
            radius = out.reshape(-1).abs()
            scores = {"accuracy": correct.float().mean().item()}
        if is_otnn(model):
            scores["certified_accuracy"] = {
                f"{r:g}": (correct & (radius > r)).float().mean().item() for r in radii
            }
        sample = x[:grad_norm_samples].to(device)
        scores["mean_grad_norm"] = input_gradient_norms(model, sample).mean().item()
    return scores


def test_diagnostics(prepared) -> dict:
    """:func:`otnn_plugin.diagnostics.transport_diagnostics` of a trained model on the first test images."""
    x, y = (t[:prepared.recipe.diagnostic_samples].to(prepared.device) for t in prepared.test)
    return transport_diagnostics(prepared.model, x, y, prepared.task)
