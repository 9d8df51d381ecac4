"""The training objective: an hKR loss for OTNNs, cross-entropy for their unconstrained twins (paper A.2.3)."""
from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.nn import functional as F

from .. import losses
from .._names import unknown_name

__all__ = ["build_objective", "task_of", "CROSS_ENTROPY_LOSSES"]


def task_of(targets: torch.Tensor) -> str:
    """``'multiclass'`` for integer class indices, ``'multilabel'`` for (N, L) labels, else ``'binary'``."""
    if not targets.is_floating_point():
        return "multiclass"
    return "multilabel" if targets.dim() == 2 else "binary"


class CrossEntropy(nn.Module):
    """Categorical cross-entropy on class indices (the unconstrained Fashion-MNIST twin)."""

    output_kind = "multiclass"

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)


class BinaryCrossEntropy(nn.Module):
    """Sigmoid cross-entropy per output; targets in {0, 1} or {-1, +1} (CelebA twin, snowflake twin)."""

    output_kind = "multilabel"

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = (targets > 0).to(outputs.dtype).reshape(outputs.shape)
        return F.binary_cross_entropy_with_logits(outputs, targets)


CROSS_ENTROPY_LOSSES = {"cross_entropy": CrossEntropy, "binary_cross_entropy": BinaryCrossEntropy}


def build_objective(name: str, kwargs: dict, num_outputs: int, task: str) -> nn.Module:
    """The loss ``name`` for a head of ``num_outputs`` on data of kind ``task``, or a ``ValueError`` saying why not."""
    if name in CROSS_ENTROPY_LOSSES:
        if kwargs:
            raise ValueError(f"{name} takes no loss_args, got {', '.join(kwargs)}")
        objective = CROSS_ENTROPY_LOSSES[name]()
        if name == "cross_entropy" and task != "multiclass":
            raise ValueError(f"cross_entropy needs class-index targets, but the data is {task}: "
                             "use binary_cross_entropy")
        if name == "binary_cross_entropy" and task == "multiclass":
            raise ValueError("binary_cross_entropy needs 0/1 or -1/+1 targets, but the data has class indices: "
                             "use cross_entropy")
        return objective
    if name not in losses.list_losses():
        raise unknown_name("loss", name, [*losses.list_losses(), *CROSS_ENTROPY_LOSSES])
    accepted = inspect.signature(losses.loss_class(name)).parameters
    head = {key: num_outputs for key in ("num_classes", "num_labels") if key in accepted and key not in kwargs}
    objective = losses.create_loss(name, **head, **kwargs)
    losses.check_outputs(objective, num_outputs)
    if objective.output_kind != task:
        raise ValueError(f"loss {name} is a {objective.output_kind} loss but the data is {task}")
    return objective
