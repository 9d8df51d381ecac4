"""Training-time state of deel-torchlip's spectral layers: a gain-preserving start and the power-iteration count.

deel-torchlip's ``SpectralConv2d`` orthonormalises the ``(out, in * k * k)`` reshaped kernel (spectral
normalisation, then Björck) and multiplies it by the lconv coefficient ``sqrt(stride^2 / k^2)`` (1/3 for a 3x3
stride-1 conv), so that the convolution itself is 1-Lipschitz (paper appendix A.2.2). With deel-torchlip's
orthogonal initialisation the taps are unrelated, and each convolution passes about 1/3 of a gradient's norm:
the 13 convolutions of Table 6 start with ``||grad f|| ~ 6e-7`` and hKR training sees a constant network.
:func:`smooth_orthogonal_init_` starts every tap from the same orthogonal matrix instead, which reaches the bound
on smooth signals, so the same network starts near ``||grad f|| ~ 0.04`` (``tests/test_spectral.py``).

torch's ``spectral_norm`` parametrisation runs one power-iteration step per training forward. Adam steps of the
paper's CelebA learning rate (1e-2) outrun it; the under-estimated norm then lets Björck diverge to NaN.
:func:`set_power_iterations` raises the count for training.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm

from .layers import SpectralConv2d

__all__ = ["smooth_orthogonal_init_", "set_power_iterations", "refresh_spectral_state_"]

#: Power-iteration steps that settle a freshly initialised kernel's norm estimate.
_SETTLE_ITERATIONS = 50


def _spectral_norms(module: nn.Module) -> list[_SpectralNorm]:
    return [p for p in getattr(getattr(module, "parametrizations", {}), "weight", ()) if isinstance(p, _SpectralNorm)]


def set_power_iterations(model: nn.Module, iterations: int) -> int:
    """Run ``iterations`` power-iteration steps per training forward in every spectral layer; returns their count."""
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    layers = [norm for module in model.modules() for norm in _spectral_norms(module)]
    for norm in layers:
        norm.n_power_iterations = iterations
    return len(layers)


@torch.no_grad()
def refresh_spectral_state_(module: nn.Module) -> None:
    """Settle the norm estimate and the cached Björck weight of ``module`` after its raw weight was set.

    In eval mode deel-torchlip reuses the weight of the last training forward, so without this an eval-mode
    forward would still see the old weight.
    """
    norms = _spectral_norms(module)
    if not norms:
        raise ValueError(f"{type(module).__name__} has no spectral-norm parametrisation to refresh")
    training, steps = module.training, [norm.n_power_iterations for norm in norms]
    module.train()
    for norm in norms:
        norm.n_power_iterations = _SETTLE_ITERATIONS
    try:
        module.weight  # a training-mode read runs the power iteration and refreshes the Björck cache
    finally:
        for norm, step in zip(norms, steps):
            norm.n_power_iterations = step
        module.train(training)


@torch.no_grad()
def smooth_orthogonal_init_(conv: SpectralConv2d) -> None:
    """Give every tap of ``conv`` the same orthogonal ``(out, in)`` matrix, scaled so the reshaped kernel is orthonormal.

    After the lconv coefficient the convolution maps a constant image ``x`` to ``Q x``: gain 1 on smooth signals,
    where orthogonal initialisation gives about ``1/k``. Training breaks the tap symmetry from the first step.
    """
    if not isinstance(conv, SpectralConv2d):
        raise TypeError(f"smooth_orthogonal_init_ needs a SpectralConv2d, got {type(conv).__name__}")
    weight = conv.parametrizations.weight.original
    out_chs, in_chs, *kernel = weight.shape
    taps = torch.empty(out_chs, in_chs, dtype=weight.dtype, device=weight.device)
    nn.init.orthogonal_(taps)
    weight.copy_(taps[:, :, None, None].expand_as(weight) / math.sqrt(math.prod(kernel)))
    if conv.bias is not None:
        conv.bias.zero_()
    refresh_spectral_state_(conv)
