"""1-Lipschitz building blocks: our fast GroupSort2 and L2-norm pooling, and the deel-torchlip layers we use.

The constrained affine layers come from deel-torchlip 1.0.5 unchanged (spectral normalisation followed by Björck
orthonormalisation, paper appendix A.2.2). GroupSort2 and ``ScaledL2NormPool2d`` compute the same outputs and
gradients as deel-torchlip's, bit for bit (GroupSort2's gradients differ at exact ties only, see its docstring),
with fewer passes over memory and backward passes of their own (``python -m benchmarks.bench_groupsort`` and
``python -m benchmarks.bench_train`` measure the gains).
"""
from __future__ import annotations

import torch
from deel import torchlip
from deel.torchlip import ScaledAdaptiveAvgPool2d, SpectralConv2d, SpectralLinear
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from .orthogonal import OrthogonalConv2d

__all__ = [
    "GroupSort2",
    "group_sort2",
    "SpectralConv2d",
    "SpectralLinear",
    "ScaledL2NormPool2d",
    "l2_norm_pool2d",
    "ScaledAdaptiveAvgPool2d",
    "LIPSCHITZ_LAYERS",
]

#: Layer types whose presence marks a network as built from 1-Lipschitz blocks.
LIPSCHITZ_LAYERS = (SpectralConv2d, SpectralLinear, OrthogonalConv2d)

#: The integer type of each float type's width: gradients are routed by moving their bits, never their values.
_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
         torch.bfloat16: torch.int16}


def _pairs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x`` viewed as ``(N, C/2, 2, *)`` and its two halves (strided views, no copy)."""
    pairs = x.unflatten(1, (x.shape[1] // 2, 2))
    return pairs, pairs.select(2, 0), pairs.select(2, 1)


def _sort_pairs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GroupSort2 of ``x`` written into one new tensor, and the two halves of ``x``."""
    pairs, first, second = _pairs(x)
    out = torch.empty_like(pairs)
    torch.minimum(first, second, out=out.select(2, 0))
    torch.maximum(first, second, out=out.select(2, 1))
    return out.flatten(1, 2), first, second


def _route_pairs(grad: torch.Tensor, swapped: torch.Tensor) -> torch.Tensor:
    """``grad`` with the two entries of each pair exchanged where ``swapped``: an XOR swap of their bits.

    ``d = (g0 ^ g1) * swapped`` is ``g0 ^ g1`` on swapped pairs and 0 elsewhere, so ``(g0 ^ d, g1 ^ d)`` are the
    routed gradients, bit for bit (NaN and signed zeros included), in a few vectorised integer passes.
    ``torch.where`` with a boolean condition is not vectorised on a CPU and cost three times as much.
    """
    pairs, grad_first, grad_second = _pairs(grad.view(_BITS[grad.dtype]))
    exchange = torch.bitwise_xor(grad_first, grad_second).mul_(swapped)
    return torch.bitwise_xor(pairs, exchange.unsqueeze(2)).flatten(1, 2).view(grad.dtype)


class _GroupSort2Function(torch.autograd.Function):
    """Sort each channel pair ``(2i, 2i+1)``; the backward pass routes gradients through the saved swap mask.

    The mask (one byte per pair) is all that is saved; a tie counts as not swapped, so each output's gradient goes
    to the input of the same position.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out, first, second = _sort_pairs(x)
        ctx.save_for_backward(torch.gt(first, second))
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (swapped,) = ctx.saved_tensors
        return _route_pairs(grad, swapped)


def group_sort2(x: torch.Tensor) -> torch.Tensor:
    """GroupSort2 (paper A.2.2): ``out[2i], out[2i+1] = min(x[2i], x[2i+1]), max(x[2i], x[2i+1])`` on dim 1.

    Without autograd (``torch.no_grad``, inference, inputs that need no gradient) no swap mask is computed.
    """
    if x.dim() < 2 or x.shape[1] % 2:
        raise ValueError(f"GroupSort2 needs an even number of channels on dim 1, got shape {tuple(x.shape)}")
    if torch.is_grad_enabled() and x.requires_grad:
        return _GroupSort2Function.apply(x)
    return _sort_pairs(x)[0]


class GroupSort2(nn.Module):
    """GroupSort2 activation: 1-Lipschitz and gradient-norm preserving (Anil et al. 2019).

    Same outputs as ``deel.torchlip.GroupSort2`` for inputs ``(N, C, *)`` with even ``C``, and the same gradients
    except at exact ties, where torchlip sends both gradients to the first input (its ``min``/``max`` indices
    both point there) and this one sends each to its own input, keeping the gradient's norm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return group_sort2(x)

    def vanilla_export(self) -> "GroupSort2":
        """GroupSort2 has no constraint to fold: the exported network keeps it as is."""
        return self


def _windows(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """``x`` ``(*, H, W)`` cut into non-overlapping windows, ``(*, H // kh, kh, W // kw, kw)`` (a view).

    Rows and columns left over at the bottom and right are dropped, as pooling without ``ceil_mode`` drops them.
    """
    (kh, kw), height, width = kernel, x.shape[-2] // kernel[0], x.shape[-1] // kernel[1]
    return x[..., :height * kh, :width * kw].unflatten(-1, (width, kw)).unflatten(-3, (height, kh))


def _window_sums_of_squares(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Sum of squares over each window, added in the order ``avg_pool2d`` adds them (so the bits agree)."""
    windows = _windows(x, kernel)
    cells = [windows[..., i, :, j] for i in range(kernel[0]) for j in range(kernel[1])]
    sums = cells[0] * cells[0]
    square = torch.empty_like(sums)
    for cell in cells[1:]:
        sums.add_(torch.mul(cell, cell, out=square))
    return sums


class _L2NormPoolFunction(torch.autograd.Function):
    """``sqrt(s)`` with ``s`` the sum of squares over each window; gradient ``x * rsqrt(s)``, zero where ``s = 0``.

    ``rsqrt(s)`` (not ``1 / norm``) is what ``lp_pool2d``'s backward computes, so the gradients agree bit for bit
    with 2x2 windows too.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
        sums = _window_sums_of_squares(x, kernel)
        ctx.save_for_backward(x, sums)
        ctx.kernel = kernel
        return sums.sqrt()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, sums = ctx.saved_tensors
        scale = torch.rsqrt(sums).mul_(grad).masked_fill_(sums == 0, 0.0)
        covered = x.shape[-2] % ctx.kernel[0] == 0 and x.shape[-1] % ctx.kernel[1] == 0
        grad_x = torch.empty_like(x) if covered else torch.zeros_like(x)
        torch.mul(_windows(x, ctx.kernel), scale[..., :, None, :, None], out=_windows(grad_x, ctx.kernel))
        return grad_x, None


def l2_norm_pool2d(x: torch.Tensor, kernel_size: int | tuple[int, int]) -> torch.Tensor:
    """L2 norm of each non-overlapping ``kernel_size`` window of ``x`` ``(*, H, W)`` (norm-preserving pooling).

    Equal to ``torch.nn.functional.lp_pool2d(x, 2, kernel_size)``, outputs and gradients, bit for bit with 2x2
    windows (within a rounding for other sizes). ``lp_pool2d`` squares ``x`` into a full-size tensor and chains
    eight more operations, each with its own backward; this reads ``x`` once per window cell and has one backward.
    """
    kernel = _pair(kernel_size)
    if torch.is_grad_enabled() and x.requires_grad:
        return _L2NormPoolFunction.apply(x, kernel)
    return _window_sums_of_squares(x, kernel).sqrt_()


class ScaledL2NormPool2d(torchlip.ScaledL2NormPool2d):
    """deel-torchlip's L2-norm pooling (paper A.2.2: norm-preserving, gradient norm 1 almost everywhere).

    Same arguments and outputs; computed by :func:`l2_norm_pool2d` unless ``ceil_mode`` asks for partial windows.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ceil_mode:
            return super().forward(x)
        out = l2_norm_pool2d(x, self.kernel_size)
        return out if self._coefficient_lip == 1.0 else out * self._coefficient_lip

    def vanilla_export(self) -> "ScaledL2NormPool2d":
        """The pooling has no weight to fold: the exported network keeps this fast version."""
        return self
