"""1-Lipschitz building blocks: our fast GroupSort2 and L2-norm pooling, and the deel-torchlip layers we use.

The constrained affine layers come from deel-torchlip 1.0.5 unchanged (spectral normalisation followed by Björck
orthonormalisation, paper appendix A.2.2). GroupSort2 and ``ScaledL2NormPool2d`` compute the same outputs and
gradients as deel-torchlip's, bit for bit (GroupSort2's gradients differ at exact ties only, see its docstring),
with fewer passes over memory and backward passes of their own (``python -m benchmarks.bench_groupsort`` and
``python -m benchmarks.bench_train`` measure the gains). Like deel-torchlip's, both are differentiable to any order
(double backward, Hessian-vector products, gradient penalties) and work under ``torch.func`` transforms (``vmap``,
``jacrev``, ``jvp``); the fast first-order backward is kept for the usual ``backward()`` without a graph of it.
"""
from __future__ import annotations

import torch
from deel import torchlip
from deel.torchlip import FrobeniusLinear, ScaledAdaptiveAvgPool2d, SpectralConv2d, SpectralLinear
from torch import nn
from torch.nn.modules.utils import _pair

from .orthogonal import OrthogonalConv2d

__all__ = [
    "CenterCrop2d",
    "GroupSort2",
    "group_sort2",
    "SpectralConv2d",
    "SpectralLinear",
    "FrobeniusLinear",
    "ScaledL2NormPool2d",
    "l2_norm_pool2d",
    "ScaledAdaptiveAvgPool2d",
    "LIPSCHITZ_LAYERS",
]

#: Layer types whose presence marks a network as built from 1-Lipschitz blocks.
LIPSCHITZ_LAYERS = (SpectralConv2d, SpectralLinear, FrobeniusLinear, OrthogonalConv2d)

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


def _swapped(x: torch.Tensor) -> torch.Tensor:
    """Where GroupSort2 exchanges a pair (one byte per pair): ``x[2i] > x[2i+1]``; a tie counts as not swapped."""
    _, first, second = _pairs(x)
    return torch.gt(first, second)


def _fold(tensor: torch.Tensor, dim: int | None, batch_size: int) -> torch.Tensor:
    """A ``torch.vmap`` argument with its vmapped ``dim`` (``None``: not vmapped) merged into dim 0."""
    if dim is None:
        return tensor.expand(batch_size, *tensor.shape).flatten(0, 1)
    return tensor.movedim(dim, 0).flatten(0, 1)


class _RoutePairsFunction(torch.autograd.Function):
    """:func:`_route_pairs` as a differentiable linear map of ``grad``: GroupSort2's backward, and its Jacobian.

    Exchanging the entries of some pairs is its own transpose, so the backward and the forward-mode derivative
    are this Function again, to any order (what double backward, Hessian-vector products and ``torch.func``
    need). ``swapped`` is a constant: its gradient is ``None``.
    """

    @staticmethod
    def forward(grad: torch.Tensor, swapped: torch.Tensor) -> torch.Tensor:
        return _route_pairs(grad, swapped)

    @staticmethod
    def setup_context(ctx, inputs: tuple[torch.Tensor, torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[1])
        ctx.save_for_forward(inputs[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (swapped,) = ctx.saved_tensors
        return _RoutePairsFunction.apply(grad, swapped), None

    @staticmethod
    def jvp(ctx, grad_tangent: torch.Tensor, _: None) -> torch.Tensor:
        (swapped,) = ctx.saved_tensors
        return _RoutePairsFunction.apply(grad_tangent, swapped)

    @staticmethod
    def vmap(info, in_dims: tuple[int | None, int | None], grad: torch.Tensor,
             swapped: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``torch.vmap`` rule: the vmapped dimension becomes part of the batch dimension (routing is per pair)."""
        folded = (_fold(tensor, dim, info.batch_size) for tensor, dim in zip((grad, swapped), in_dims))
        return _RoutePairsFunction.apply(*folded).unflatten(0, (info.batch_size, -1)), 0


class _GroupSort2Function(torch.autograd.Function):
    """Sort each channel pair ``(2i, 2i+1)``; the backward pass routes gradients through the saved swap mask.

    The mask (one byte per pair) is all that is saved, and only for an input that requires a gradient. Both
    derivatives are :class:`_RoutePairsFunction` (GroupSort2 is the permutation it applies, so its second
    derivative is zero), in the ``setup_context`` form that ``torch.func`` transforms need (PyTorch's
    "Extending torch.func with autograd.Function").
    """

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _sort_pairs(x)[0]

    @staticmethod
    def setup_context(ctx, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        (x,) = inputs
        ctx.save_for_forward(x)  # released by autograd once the forward-mode derivative is computed
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(_swapped(x))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (swapped,) = ctx.saved_tensors
        return _RoutePairsFunction.apply(grad, swapped)

    @staticmethod
    def jvp(ctx, x_tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return _RoutePairsFunction.apply(x_tangent, _swapped(x))

    @staticmethod
    def vmap(info, in_dims: tuple[int | None], x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``torch.vmap`` rule: the vmapped dimension becomes part of the batch dimension."""
        return _GroupSort2Function.apply(_fold(x, in_dims[0], info.batch_size)).unflatten(0, (info.batch_size, -1)), 0


def group_sort2(x: torch.Tensor) -> torch.Tensor:
    """GroupSort2 (paper A.2.2): ``out[2i], out[2i+1] = min(x[2i], x[2i+1]), max(x[2i], x[2i+1])`` on dim 1.

    Differentiable to any order, forward and reverse mode, and under ``torch.func`` transforms. No swap mask is
    computed for an input that requires no gradient (under ``torch.no_grad`` no layer output does).
    """
    if x.dim() < 2 or x.shape[1] % 2:
        raise ValueError(f"GroupSort2 needs an even number of channels on dim 1, got shape {tuple(x.shape)}")
    return _GroupSort2Function.apply(x)


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


def _cells(x: torch.Tensor, kernel: tuple[int, int]) -> list[torch.Tensor]:
    """The ``kh * kw`` cells of every window, ``(*, H // kh, W // kw)`` views, in the order ``avg_pool2d`` adds.

    Taken with ``unbind``, whose backward stacks the cells' gradients in one pass; ``select`` would fill a zero
    tensor of the size of ``x`` for each cell.
    """
    return [cell for row in _windows(x, kernel).unbind(-3) for cell in row.unbind(-1)]


def _window_sums_of_squares(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Sum of squares over each window, added in the order ``avg_pool2d`` adds them (so the bits agree)."""
    cells = _cells(x, kernel)
    sums = cells[0] * cells[0]
    square = torch.empty_like(sums)
    for cell in cells[1:]:
        sums.add_(torch.mul(cell, cell, out=square))
    return sums


def _window_dots(x: torch.Tensor, y: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """``sum(x * y)`` over each window with differentiable operations; for ``y = x``, the bits of
    :func:`_window_sums_of_squares`."""
    pairs = zip(_cells(x, kernel), _cells(y, kernel))
    first_x, first_y = next(pairs)
    sums = first_x * first_y
    for cell_x, cell_y in pairs:
        sums = sums + cell_x * cell_y
    return sums


def _times_rsqrt(values: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
    """``rsqrt(sums) * values``, and 0 where ``sums = 0``: no infinity reaches a derivative there either."""
    empty = sums == 0
    return torch.where(empty, 0.0, torch.rsqrt(torch.where(empty, 1.0, sums)) * values)


def _l2_norm_pool_vjp(x: torch.Tensor, grad: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """The fast backward's ``x * rsqrt(s) * grad``, same operations and bits, as a graph of differentiable ones:
    ``s`` is recomputed from ``x`` so that its own derivative is in the graph."""
    scale = _times_rsqrt(grad, _window_dots(x, x, kernel))
    grad_x = (_windows(x, kernel) * scale[..., :, None, :, None]).flatten(-2, -1).flatten(-3, -2)
    return nn.functional.pad(grad_x, (0, x.shape[-1] - grad_x.shape[-1], 0, x.shape[-2] - grad_x.shape[-2]))


class _L2NormPoolFunction(torch.autograd.Function):
    """``sqrt(s)`` with ``s`` the sum of squares over each window; gradient ``x * rsqrt(s)``, zero where ``s = 0``.

    ``rsqrt(s)`` (not ``1 / norm``) is what ``lp_pool2d``'s backward computes, so the gradients agree bit for bit
    with 2x2 windows too. ``s`` is a second, non-differentiable output (``None`` without ``keep_sums``, and the
    norms are then computed in place), in the ``setup_context`` form that ``torch.func`` transforms need (PyTorch's
    "Extending torch.func with autograd.Function"). The backward runs in place unless a graph of it is asked for
    (``create_graph=True``, ``torch.func``); then :func:`_l2_norm_pool_vjp` computes the same values with
    differentiable operations. Forward mode: ``d sqrt(s) = sum(x * dx) * rsqrt(s)``.
    """

    @staticmethod
    def forward(x: torch.Tensor, kernel: tuple[int, int],
                keep_sums: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        sums = _window_sums_of_squares(x, kernel)
        return (sums.sqrt(), sums) if keep_sums else (sums.sqrt_(), None)

    @staticmethod
    def setup_context(ctx, inputs: tuple[torch.Tensor, tuple[int, int], bool],
                      output: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        (x, ctx.kernel, _), sums = inputs, output[1]
        if sums is not None:
            ctx.mark_non_differentiable(sums)
        ctx.set_materialize_grads(False)  # no zero gradient is built for ``sums``
        ctx.save_for_backward(x, sums)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None, _: None) -> tuple[torch.Tensor | None, None, None]:
        x, sums = ctx.saved_tensors
        if grad is None:  # gradients are not materialised: no gradient reached the norms
            return None, None, None
        if torch.is_grad_enabled():
            return _l2_norm_pool_vjp(x, grad, ctx.kernel), None, None
        scale = torch.rsqrt(sums).mul_(grad).masked_fill_(sums == 0, 0.0)
        covered = x.shape[-2] % ctx.kernel[0] == 0 and x.shape[-1] % ctx.kernel[1] == 0
        grad_x = torch.empty_like(x) if covered else torch.zeros_like(x)
        torch.mul(_windows(x, ctx.kernel), scale[..., :, None, :, None], out=_windows(grad_x, ctx.kernel))
        return grad_x, None, None

    @staticmethod
    def jvp(ctx, x_tangent: torch.Tensor, _: None, __: None) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return _times_rsqrt(_window_dots(x, x_tangent, ctx.kernel), _window_dots(x, x, ctx.kernel)), None

    @staticmethod
    def vmap(info, in_dims: tuple[int, None, None], x: torch.Tensor, kernel: tuple[int, int],
             keep_sums: bool) -> tuple[tuple[torch.Tensor, torch.Tensor | None], tuple[int, int | None]]:
        """``torch.vmap`` rule: pooling works on any leading dimensions, the vmapped one moved first included."""
        norms, sums = _L2NormPoolFunction.apply(x.movedim(in_dims[0], 0), kernel, keep_sums)
        return (norms, sums), (0, None if sums is None else 0)


def l2_norm_pool2d(x: torch.Tensor, kernel_size: int | tuple[int, int]) -> torch.Tensor:
    """L2 norm of each non-overlapping ``kernel_size`` window of ``x`` ``(*, H, W)`` (norm-preserving pooling).

    Equal to ``torch.nn.functional.lp_pool2d(x, 2, kernel_size)``, outputs and gradients, bit for bit with 2x2
    windows (within a rounding for other sizes). ``lp_pool2d`` squares ``x`` into a full-size tensor and chains
    eight more operations, each with its own backward; this reads ``x`` once per window cell and has one backward.
    Differentiable to any order, forward and reverse mode, and under ``torch.func`` transforms. The sums of
    squares are kept for the backward only when autograd records one.
    """
    keep_sums = torch.is_grad_enabled() and x.requires_grad
    return _L2NormPoolFunction.apply(x, _pair(kernel_size), keep_sums)[0]


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


class CenterCrop2d(nn.Module):
    """The central ``height x width`` window of a ``(N, C, H, W)`` batch: a selection of pixels, so 1-Lipschitz and
    gradient-norm preserving (its Jacobian's rows are orthonormal)."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, left = (x.shape[-2] - self.height) // 2, (x.shape[-1] - self.width) // 2
        if top < 0 or left < 0:
            raise ValueError(f"cannot crop {tuple(x.shape[-2:])} inputs to {self.height}x{self.width}: the model was "
                             "built for a larger img_size")
        return x[..., top:top + self.height, left:left + self.width]

    def extra_repr(self) -> str:
        return f"height={self.height}, width={self.width}"
