"""Higher-order derivatives of our GroupSort2 and L2-norm pooling: double backward, forward mode and torch.func,
on the layers alone and through a small OTNN (issue 19, "Layers")."""
from __future__ import annotations

from typing import Callable

import pytest
import timm
import torch
from torch import nn

import otnn_plugin  # noqa: F401  (registers the models)
from benchmarks.bench_train import with_torchlip_layers
from otnn_plugin.layers import GroupSort2, ScaledL2NormPool2d, group_sort2, l2_norm_pool2d


def small_otnn() -> nn.Module:
    """The small CelebA VGG at 32 x 32 in eval mode: ten GroupSort2 and five 2x2 L2-norm poolings, 22 outputs."""
    return timm.create_model("otnn_vgg_celeba_small", img_size=(32, 32)).eval()


def pool_2x2(x: torch.Tensor) -> torch.Tensor:
    return l2_norm_pool2d(x, 2)


def pool_2x3(x: torch.Tensor) -> torch.Tensor:
    return l2_norm_pool2d(x, (2, 3))


@pytest.mark.parametrize("fn, shape", [
    (group_sort2, (2, 6, 3, 3)), (group_sort2, (3, 4)), (pool_2x2, (2, 3, 7, 5)), (pool_2x3, (1, 2, 4, 7)),
])
def test_derivatives_of_every_order_and_mode_match_finite_differences(fn, shape):
    """Random inputs in double precision: no ties and no all-zero window, where the layers are smooth."""
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x,), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(fn, (x,), check_fwd_over_rev=True)


@pytest.mark.parametrize("fn", [group_sort2, pool_2x3])
def test_first_order_gradients_keep_their_bits_when_a_graph_is_built(fn):
    """``create_graph=True`` takes the differentiable backward, which must compute the fast one's bits."""
    x = torch.randn(2, 4, 5, 7)
    x[0, 1, :2, :3] = 0.0  # an all-zero window
    x[1, 2] = x[1, 3]  # GroupSort2 ties
    x.requires_grad_()
    out = fn(x)
    weights = torch.randn_like(out, requires_grad=True)  # so that GroupSort2's gradient has a graph too
    (fast,) = torch.autograd.grad(out, x, weights, retain_graph=True)
    (graphed,) = torch.autograd.grad(out, x, weights, create_graph=True)
    assert graphed.requires_grad and torch.equal(fast, graphed)


def test_vmap_equals_the_batched_call_and_per_sample_gradients_equal_a_loop():
    x = torch.randn(3, 4, 6, 6, 5)
    for layer in (GroupSort2(), ScaledL2NormPool2d(2)):
        assert torch.equal(torch.func.vmap(layer)(x), layer(x.flatten(0, 1)).unflatten(0, (3, 4)))
        assert torch.equal(torch.func.vmap(layer, in_dims=3)(x), torch.stack([layer(x[:, :, :, i]) for i in range(6)]))
    weights = torch.randn(4, 6, 3, 2)

    def loss(sample: torch.Tensor) -> torch.Tensor:
        return (pool_2x2(group_sort2(sample)) * weights).sum()

    per_sample = torch.func.vmap(torch.func.grad(loss))(x)
    assert torch.equal(per_sample, torch.stack([torch.func.grad(loss)(sample) for sample in x]))


def test_jacrev_of_an_otnn_equals_the_jacobian_built_row_by_row():
    model = small_otnn()
    x = torch.rand(2, 3, 32, 32)
    jacobian = torch.func.jacrev(model)(x)  # (2, 22, 2, 3, 32, 32)
    inputs = x.clone().requires_grad_()
    out = model(inputs)
    assert jacobian.shape == (*out.shape, *x.shape)
    for sample in range(out.shape[0]):
        for head in range(out.shape[1]):
            (row,) = torch.autograd.grad(out[sample, head], inputs, retain_graph=True)
            torch.testing.assert_close(jacobian[sample, head], row, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("build, shape", [
    (small_otnn, (1, 3, 32, 32)),
    (lambda: nn.Sequential(GroupSort2(), ScaledL2NormPool2d(2)), (1, 4, 6, 6)),  # all singular values 1 (GNP)
])
def test_power_iteration_bounds_the_local_lipschitz_constant(build: Callable[[], nn.Module], shape):
    """Largest singular value of the Jacobian at a random input, by power iteration on ``J^T J``: ``J^T u`` by
    ``vjp``, ``J v`` by a ``vjp`` of that ``vjp`` (a double backward), checked against ``jvp`` and an SVD; in double
    precision, so the two routes agree beyond float32 rounding."""
    model, x = build().double(), torch.rand(shape, dtype=torch.float64)
    out, vjp = torch.func.vjp(model, x)
    _, vjp_of_vjp = torch.func.vjp(lambda u: vjp(u)[0], torch.zeros_like(out))
    v = torch.randn_like(x)
    torch.testing.assert_close(vjp_of_vjp(v)[0], torch.func.jvp(model, (x,), (v,))[1], rtol=1e-4, atol=1e-9)
    for _ in range(30):
        v = vjp(vjp_of_vjp(v / v.norm())[0])[0]
    sigma = vjp_of_vjp(v / v.norm())[0].norm()
    jacobian = torch.func.jacrev(model)(x).flatten(end_dim=out.dim() - 1).flatten(1)
    torch.testing.assert_close(sigma, torch.linalg.matrix_norm(jacobian, 2), rtol=1e-3, atol=0)
    assert 0 < sigma <= 1 + 1e-3


def test_gradient_penalty_double_backward_equals_torchlips():
    """``grad(out, x, create_graph=True)``, then the backward of a penalty on its norm, in training mode: finite
    weight gradients, equal to those through deel-torchlip's GroupSort2 and pooling (no ties, no zero window), in
    double precision so that the two summation orders agree beyond float32 rounding."""
    ours = small_otnn().double().train()
    grads = []
    for model in (ours, with_torchlip_layers(ours)):
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64,
                       requires_grad=True)
        (grad_x,) = torch.autograd.grad(model(x)[:, 0].sum(), x, create_graph=True)
        (grad_x.flatten(1).norm(dim=1) - 1).square().mean().backward()
        grads.append([param.grad for param in model.parameters() if param.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for mine, theirs in zip(*grads):
        assert mine.isfinite().all() and mine.abs().sum() > 0
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-8)
