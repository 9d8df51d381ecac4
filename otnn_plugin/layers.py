"""1-Lipschitz building blocks: our fast GroupSort2 and the deel-torchlip layers we use.

The constrained affine layers and pools come from deel-torchlip 1.0.5 unchanged (spectral normalisation
followed by Björck orthonormalisation, paper appendix A.2.2). GroupSort2 is ours: the same function as
``deel.torchlip.GroupSort2`` but computed with element-wise ``minimum``/``maximum`` and a backward pass
that only stores which pairs were swapped (see ``benchmarks/bench_groupsort.py`` for the speed ratio).
"""
from __future__ import annotations

import torch
from deel.torchlip import ScaledAdaptiveAvgPool2d, ScaledL2NormPool2d, SpectralConv2d, SpectralLinear
from torch import nn

__all__ = [
    "GroupSort2",
    "group_sort2",
    "SpectralConv2d",
    "SpectralLinear",
    "ScaledL2NormPool2d",
    "ScaledAdaptiveAvgPool2d",
    "LIPSCHITZ_LAYERS",
]

#: Layer types whose presence marks a network as built from 1-Lipschitz blocks.
LIPSCHITZ_LAYERS = (SpectralConv2d, SpectralLinear)


def _pairs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` viewed as ``(N, C/2, 2, *)`` and its two halves (strided views, no copy)."""
    pairs = x.unflatten(1, (x.shape[1] // 2, 2))
    return pairs, pairs.select(2, 0), pairs.select(2, 1)


class _GroupSort2Function(torch.autograd.Function):
    """Sort each channel pair ``(2i, 2i+1)``; the backward pass routes gradients through the swap mask.

    Both passes write straight into one preallocated output: no stacked temporaries.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        pairs, first, second = _pairs(x)
        out = torch.empty_like(pairs)
        torch.minimum(first, second, out=out.select(2, 0))
        torch.maximum(first, second, out=out.select(2, 1))
        ctx.save_for_backward(torch.gt(first, second))
        return out.flatten(1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (swapped,) = ctx.saved_tensors
        pairs, grad_first, grad_second = _pairs(grad)
        out = torch.empty_like(pairs)
        torch.where(swapped, grad_second, grad_first, out=out.select(2, 0))
        torch.where(swapped, grad_first, grad_second, out=out.select(2, 1))
        return out.flatten(1, 2)


def group_sort2(x: torch.Tensor) -> torch.Tensor:
    """GroupSort2 (paper A.2.2): ``out[2i], out[2i+1] = min(x[2i], x[2i+1]), max(x[2i], x[2i+1])`` on dim 1."""
    if x.dim() < 2 or x.shape[1] % 2:
        raise ValueError(f"GroupSort2 needs an even number of channels on dim 1, got shape {tuple(x.shape)}")
    return _GroupSort2Function.apply(x)


class GroupSort2(nn.Module):
    """GroupSort2 activation: 1-Lipschitz and gradient-norm preserving (Anil et al. 2019).

    Same outputs as ``deel.torchlip.GroupSort2`` for inputs ``(N, C, *)`` with even ``C``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return group_sort2(x)

    def vanilla_export(self) -> "GroupSort2":
        """GroupSort2 has no constraint to fold: the exported network keeps it as is."""
        return self
