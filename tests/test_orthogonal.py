"""Issue 18: orthogonal (BCOP / RKO) convolutions and the recipes' new settings (balanced hinge, schedule)."""
from __future__ import annotations

import pytest
import timm
import torch
from torch import nn
from torch.nn import functional as F

import otnn_plugin
from otnn_plugin.lipschitz import input_gradient_norms, layer_operator_norms
from otnn_plugin.orthogonal import CircularConv2d, OrthogonalConv2d, circular_pad, orthonormal_columns

#: (in, out, kernel, stride): square, widening, narrowing, larger kernel, 1x1, strided narrowing and widening.
SHAPES = [(8, 8, 3, 1), (4, 8, 3, 1), (8, 4, 3, 1), (6, 6, 5, 1), (6, 6, 1, 1), (8, 16, 2, 2), (8, 40, 2, 2)]


def _norm_ratio(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return conv(x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)


@pytest.mark.parametrize("in_chs, out_chs, kernel, stride", SHAPES)
def test_circular_convolution_is_orthogonal(in_chs, out_chs, kernel, stride):
    torch.manual_seed(0)
    conv = OrthogonalConv2d(in_chs, out_chs, kernel, stride, bias=False).double().eval()
    x = torch.randn(6, in_chs, 12, 12, dtype=torch.double)
    grad_out = torch.randn_like(conv(x))
    (grad_in,) = torch.autograd.grad(conv(x.requires_grad_()), x, grad_out)
    forward = _norm_ratio(conv, x)
    backward = grad_in.flatten(1).norm(dim=1) / grad_out.flatten(1).norm(dim=1)
    patch = in_chs * stride * stride
    if out_chs >= patch:  # an isometry: ||conv(x)|| = ||x||
        assert torch.allclose(forward, torch.ones_like(forward), atol=1e-4)
    if out_chs <= patch:  # row-orthogonal: gradient-norm preserving, ||conv^T g|| = ||g||
        assert torch.allclose(backward, torch.ones_like(backward), atol=1e-4)


def test_zero_padding_is_1_lipschitz_and_operator_norms_include_strided_layers():
    torch.manual_seed(0)
    model = nn.Sequential(OrthogonalConv2d(3, 8, 3, padding_mode="zeros"), OrthogonalConv2d(8, 16, 2, 2),
                          OrthogonalConv2d(16, 16, 3, padding_mode="zeros"))
    norms = layer_operator_norms(model, (3, 10, 10), n_iter=200)
    assert set(norms) == {"0", "1", "2"}
    assert max(norms.values()) <= 1 + 1e-3 and min(norms.values()) >= 0.9


def test_kernel_is_cached_in_eval_mode_and_follows_the_parameters():
    conv = OrthogonalConv2d(4, 4)
    conv.eval()
    first = conv.weight
    assert conv.weight is first and not first.requires_grad  # reused, no autograd graph
    conv.train()
    weight = conv.weight
    assert weight.requires_grad  # training mode: gradients reach the raw parameters
    weight.sum().backward()
    assert conv.rotation.grad is not None and conv.projectors.grad is not None
    torch.optim.SGD(conv.parameters(), lr=0.5).step()
    conv.eval()
    assert not torch.equal(conv.weight, first)  # an optimiser step invalidates the cache


def test_orthonormal_columns_are_unique_and_smooth():
    raw = torch.randn(5, 3, dtype=torch.double)
    q = orthonormal_columns(raw)
    assert torch.allclose(q.T @ q, torch.eye(3, dtype=torch.double), atol=1e-12)
    assert torch.allclose(orthonormal_columns(raw * 7.0), q)  # scale-free
    assert torch.allclose(orthonormal_columns(raw + 1e-7), q, atol=1e-5)  # no sign flips


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="odd kernel_size"):
        OrthogonalConv2d(4, 4, kernel_size=2)
    with pytest.raises(ValueError, match="kernel_size == stride"):
        OrthogonalConv2d(4, 4, kernel_size=3, stride=2)
    with pytest.raises(ValueError, match="padding_mode"):
        OrthogonalConv2d(4, 4, padding_mode="reflect")
    with pytest.raises(ValueError, match="conv must be one of"):
        timm.create_model("otnn_vgg_fashionmnist_small", conv="cayley")


def test_export_folds_the_orthogonal_kernel_into_conv2d():
    model = timm.create_model("otnn_vgg_fashionmnist_small", padding_mode="zeros")
    exported = otnn_plugin.export_vanilla(model)
    convs = [m for m in exported.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 11 and all(c.padding_mode == "zeros" for c in convs)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert (exported(x) - model.eval()(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("pad_h, pad_w", [(1, 1), (2, 1), (0, 2), (3, 3)])
def test_circular_pad_is_torch_circular_padding_bit_for_bit_in_the_inputs_layout(pad_h, pad_w, channels_last):
    x = torch.randn(2, 5, 6, 7)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    padded = circular_pad(x, pad_h, pad_w)
    assert torch.equal(padded, F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="circular"))
    assert padded.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    leaf = torch.randn(2, 3, 4, 5, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: circular_pad(t, pad_h, pad_w), (leaf,))
    with pytest.raises(ValueError, match="at least that large"):
        circular_pad(x, 7, 1)


@pytest.mark.parametrize("channels_last", [False, True])
def test_exported_circular_convolutions_equal_torch_circular_padding_bit_for_bit(channels_last):
    torch.manual_seed(0)
    orthogonal = OrthogonalConv2d(6, 6, 3).eval()
    exported = orthogonal.vanilla_export()
    reference = nn.Conv2d(6, 6, 3, padding=1, padding_mode="circular")
    reference.load_state_dict(exported.state_dict())
    assert type(exported) is CircularConv2d and exported.padding_mode == "circular"
    x = torch.rand(3, 6, 9, 8)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        for conv in (exported, reference):
            conv.to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(exported(x), reference(x))


def _two_blobs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with a bright top half (label 1) or bottom half (label 0), plus noise."""
    labels = torch.randint(0, 2, (n,), generator=generator)
    x = 0.2 * torch.rand(n, 1, 28, 28, generator=generator)
    x[labels == 1, :, :14] += 0.6
    x[labels == 0, :, 14:] += 0.6
    return x, labels.float()


@pytest.mark.slow
def test_a_short_hkr_training_run_raises_the_gradient_norm():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = timm.create_model("otnn_vgg_fashionmnist_small", num_classes=1)
    loss = otnn_plugin.create_loss("hkr_auto", alpha=0.1)
    probe, _ = _two_blobs(32, generator)
    before = input_gradient_norms(model, probe).mean().item()
    optimizer = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=3e-3)
    model.train()
    for _ in range(40):
        x, y = _two_blobs(64, generator)
        value = loss(model(x).squeeze(1), y)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    after = input_gradient_norms(model, probe).mean().item()
    assert after > before + 0.2, (before, after)
    assert input_gradient_norms(model, probe).max() <= 1 + 1e-3


def test_balanced_multilabel_hinge_weighs_both_sides_equally():
    outputs = torch.tensor([[-1.0], [-1.0], [-1.0], [2.0]])
    targets = torch.tensor([[1.0], [0.0], [0.0], [0.0]])  # one positive, inside its margin; three negatives
    plain = otnn_plugin.create_loss("hkr_multilabel", num_labels=1, lam=1.0, alpha=0.5, init_margin=0.5)
    balanced = otnn_plugin.create_loss("hkr_multilabel", num_labels=1, lam=1.0, alpha=0.5, init_margin=0.5,
                                       balanced=True)
    kr = (-1.0 - 1.0 + 2.0) / 3 - (-1.0)  # mean over negatives minus mean over positives
    hinges_positive, hinges_negative = 1.5, (0.0 + 0.0 + 2.5) / 3  # (m - y f)_+ with m = 0.5
    penalty = 0.5 * 0.5  # alpha * m
    assert plain(outputs, targets).item() == pytest.approx(kr + (1.5 + 0.0 + 0.0 + 2.5) / 4 - penalty)
    assert balanced(outputs, targets).item() == pytest.approx(kr + (hinges_positive + hinges_negative) / 2 - penalty)


def test_cosine_schedule_decays_to_zero():
    from otnn_plugin.train import load_recipe

    recipe = load_recipe("fashionmnist_small_otnn")
    assert recipe.schedule == "cosine"
    assert recipe.lr_at(0.0) == recipe.lr and recipe.lr_at(0.5) == pytest.approx(recipe.lr / 2)
    assert recipe.lr_at(1.0) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"schedule: unknown schedule 'step'; valid: constant, cosine"):
        load_recipe("fashionmnist_small_otnn", schedule="step")
