"""Measuring and guarding the 1-Lipschitz property of a network.

* :func:`is_otnn` tells a network built from 1-Lipschitz blocks (trained or exported) from an unconstrained one.
* :func:`explaining` puts a network in eval mode for the duration of an explanation. A training-mode forward
  runs a power-iteration step in every spectral layer and so changes the weights, and the explanation, silently.
* :func:`layer_operator_norms` measures each convolution's operator norm by power iteration on the
  convolution itself (at the input size it really sees), not on the reshaped kernel.
* :func:`input_gradient_norms` returns ``||grad_x f_k(x)||`` for every output ``k``: at most 1 for an OTNN, and
  close to 1 at the optimum of the hKR loss (paper Sec. 3, proof of Prop. 1).
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from .layers import LIPSCHITZ_LAYERS
from .orthogonal import OrthogonalConv2d

__all__ = [
    "is_otnn", "output_gap_lipschitz", "explaining", "layer_operator_norms", "input_gradient_norms", "lipschitz_report",
]


def is_otnn(model: nn.Module) -> bool:
    """True for a network built from 1-Lipschitz layers, including one exported by ``export_vanilla``."""
    return bool(getattr(model, "is_lipschitz", False)) or any(isinstance(m, LIPSCHITZ_LAYERS) for m in model.modules())


def output_gap_lipschitz(model: nn.Module) -> float:
    """A Lipschitz bound of ``f_i - f_j`` for an OTNN's outputs ``i != j``: sqrt(2) when the whole output is
    1-Lipschitz (orthonormal head rows), 2 when each head is 1-Lipschitz on its own (``head='disjoint'``). A
    multiclass prediction is certified within L2 radius ``(f_top - f_second) / output_gap_lipschitz(model)``."""
    return 2.0 if getattr(model, "head_type", "orthogonal") == "disjoint" else math.sqrt(2)


@contextlib.contextmanager
def explaining(model: nn.Module) -> Iterator[nn.Module]:
    """Run the body with ``model`` in eval mode, then restore the modes every submodule had."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def _operator_norm(op, x: torch.Tensor, n_iter: int) -> float:
    """Largest singular value of the linear map ``op`` by power iteration on ``op^T op``."""
    x = F.normalize(x.flatten(), dim=0).view_as(x)
    sigma = 0.0
    for _ in range(n_iter):
        y, vjp = torch.func.vjp(op, x)
        sigma = y.norm().item()
        (x,) = vjp(y)
        x = x / x.norm().clamp_min(1e-12)
    return sigma


@torch.no_grad()
def layer_operator_norms(model: nn.Module, input_shape: tuple[int, ...], n_iter: int = 100) -> dict[str, float]:
    """Operator norm of every ``nn.Conv2d`` and ``nn.Linear`` of ``model`` in eval mode.

    ``input_shape`` is one sample's shape, e.g. ``(1, 28, 28)``. Each layer's input size is recorded with one
    forward pass; the bias is left out (it does not change the Lipschitz constant).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    layers = {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, OrthogonalConv2d, nn.Linear))}

    def record_shape(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            shapes.setdefault(name, tuple(args[0].shape[1:]))
        return hook

    hooks = [m.register_forward_pre_hook(record_shape(name)) for name, m in layers.items()]
    device = next(model.parameters()).device
    with explaining(model):
        try:
            model(torch.zeros((1, *input_shape), device=device))
        finally:
            for h in hooks:
                h.remove()
        norms = {}
        generator = torch.Generator(device="cpu").manual_seed(0)
        for name, layer in layers.items():
            weight = layer.weight.detach()
            if isinstance(layer, (nn.Conv2d, OrthogonalConv2d)):
                def op(x, layer=layer, weight=weight):
                    return layer._conv_forward(x, weight, None)
            else:
                def op(x, weight=weight):
                    return F.linear(x, weight)
            start = torch.randn((1, *shapes[name]), generator=generator).to(device)
            with torch.enable_grad():
                norms[name] = _operator_norm(op, start, n_iter)
    return norms


def input_gradient_norms(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``||grad_x f_k(x)||_2`` for each sample and output, shape ``(B, K)``, computed in eval mode."""
    with explaining(model):
        x = inputs.detach().clone().requires_grad_(True)
        out = model(x)
        out = out.reshape(out.shape[0], -1)
        norms = []
        for k in range(out.shape[1]):
            (grad,) = torch.autograd.grad(out[:, k].sum(), x, retain_graph=k + 1 < out.shape[1])
            norms.append(grad.flatten(1).norm(dim=1))
    return torch.stack(norms, dim=1)


def lipschitz_report(model: nn.Module, inputs: torch.Tensor) -> dict[str, float]:
    """Measured bounds on ``inputs``: the largest and mean input-gradient norm, the largest layer norm.

    A disjoint head (``head='disjoint'``) bounds each output on its own, not the whole output vector, so its norm
    here is that of its largest row, the bound each ``f_k`` relies on.
    """
    grads = input_gradient_norms(model, inputs)
    layers = layer_operator_norms(model, tuple(inputs.shape[1:]), n_iter=50)
    if getattr(model, "head_type", None) == "disjoint" and "head" in layers:
        layers["head"] = model.head.weight.detach().norm(dim=1).max().item()
    return {
        "max_grad_norm": grads.max().item(),
        "mean_grad_norm": grads.mean().item(),
        "max_layer_norm": max(layers.values()),
    }
