"""The gain-preserving start of the OTNN convolutions and the power-iteration count (otnn_plugin.spectral)."""
from __future__ import annotations

import pytest
import timm
import torch
from torch import nn
from torch.nn import functional as F

import otnn_plugin  # noqa: F401  (registers the models)
from otnn_plugin.layers import SpectralConv2d, SpectralLinear
from otnn_plugin.lipschitz import input_gradient_norms, layer_operator_norms
from otnn_plugin.spectral import refresh_spectral_state_, set_power_iterations, smooth_orthogonal_init_
from otnn_plugin.train import load_recipe, prepare

CELEBA_SMALL = dict(img_size=(64, 48), conv="spectral")  # the paper's layers, which this module is about


def smooth_images(n: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """Images with the low-frequency content of photographs: 8x6 noise upsampled bilinearly."""
    torch.manual_seed(1)
    return F.interpolate(torch.rand(n, shape[0], 8, 6), size=shape[1:], mode="bilinear", align_corners=False)


def test_smooth_start_keeps_the_gradient_of_the_13_conv_stack():
    x = smooth_images(4, (3, *CELEBA_SMALL["img_size"]))
    norms = {}
    for init in ("smooth", "orthogonal"):
        torch.manual_seed(0)
        model = timm.create_model("otnn_vgg_celeba_small", conv_init=init, **CELEBA_SMALL)
        norms[init] = input_gradient_norms(model, x).mean().item()
    assert norms["orthogonal"] < 1e-4, norms
    assert norms["smooth"] > 1e-2, norms
    assert norms["smooth"] <= 1 + 1e-3


def test_smooth_start_is_gain_one_on_constant_images_and_stays_1_lipschitz():
    torch.manual_seed(0)
    conv = SpectralConv2d(8, 8, kernel_size=3, padding=1)
    smooth_orthogonal_init_(conv)
    conv.eval()
    constant = torch.randn(1, 8, 1, 1).expand(1, 8, 12, 12)
    inner = conv(constant)[..., 1:-1, 1:-1] - conv.bias[:, None, None]
    torch.testing.assert_close(inner.norm(), constant[..., 1:-1, 1:-1].norm(), rtol=1e-3, atol=0)
    (norm,) = layer_operator_norms(nn.Sequential(conv), (8, 12, 12)).values()
    assert norm <= 1 + 1e-3


def test_eval_mode_sees_the_new_weight():
    """deel-torchlip caches the Björck weight of the last training forward; the init must refresh it."""
    torch.manual_seed(0)
    conv = SpectralConv2d(4, 6, kernel_size=3, padding=1)
    smooth_orthogonal_init_(conv)
    x = torch.randn(2, 4, 9, 9)
    eval_out = conv.eval()(x)
    train_out = conv.train()(x)
    torch.testing.assert_close(eval_out, train_out, rtol=1e-4, atol=1e-5)


def test_refresh_restores_the_modes_and_the_iteration_count():
    layer = SpectralLinear(5, 3).eval()
    set_power_iterations(layer, 4)
    refresh_spectral_state_(layer)
    assert not layer.training
    assert layer.parametrizations.weight[0].n_power_iterations == 4


def test_set_power_iterations_reaches_every_spectral_layer():
    model = timm.create_model("otnn_vgg_celeba_small", **CELEBA_SMALL)
    spectral = [m for m in model.modules() if isinstance(m, (SpectralConv2d, SpectralLinear))]
    assert set_power_iterations(model, 7) == len(spectral) == 16
    assert {m.parametrizations.weight[0].n_power_iterations for m in spectral} == {7}
    assert set_power_iterations(timm.create_model("unconstrained_vgg_fashionmnist_small"), 7) == 0


def test_the_recipe_sets_the_power_iterations(data_dir):
    recipe = load_recipe("snowflake_otnn", power_iterations=3, train_limit=64, test_limit=64)
    model = prepare(recipe, device="cpu", data_dir=data_dir).model
    assert {m.parametrizations.weight[0].n_power_iterations for m in model.modules()
            if isinstance(m, SpectralLinear)} == {3}


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="conv_init must be one of smooth, orthogonal"):
        timm.create_model("otnn_vgg_fashionmnist_small", conv_init="xavier")
    with pytest.raises(TypeError, match="needs a SpectralConv2d"):
        smooth_orthogonal_init_(nn.Conv2d(2, 2, 3))
    with pytest.raises(ValueError, match="at least 1"):
        set_power_iterations(nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="no spectral-norm"):
        refresh_spectral_state_(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="power_iterations: input should be greater than or equal to 1, got 0"):
        load_recipe("snowflake_otnn", power_iterations=0)
