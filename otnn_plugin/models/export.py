"""Export an OTNN to plain torch layers (paper Sec. 6: at inference an OTNN is a classical network)."""
from __future__ import annotations

import copy

from deel.torchlip import vanilla_model
from torch import nn

from ..lipschitz import explaining, is_otnn

__all__ = ["export_vanilla"]


def export_vanilla(model: nn.Module) -> nn.Module:
    """A copy of ``model`` made of plain ``nn.Conv2d`` / ``nn.Linear`` with the constrained weights folded in.

    The copy computes the same function as ``model`` in eval mode, costs what its unconstrained twin costs, and
    keeps the timm methods (``forward_features``, ``forward_head``, ...). ``model`` itself is left unchanged.
    """
    if not is_otnn(model):
        raise ValueError(f"{type(model).__name__} has no 1-Lipschitz layer: only OTNNs can be exported")
    with explaining(model):
        exported = vanilla_model(copy.deepcopy(model), in_place=True)
    for param in exported.parameters():
        param.data = param.data.clone()
    exported.is_lipschitz = True
    return exported.eval()
