"""Issue 3: the architectures as timm models, their 1-Lipschitz guarantee, and the export."""
from __future__ import annotations

import math

import pytest
import timm
import torch
from captum.attr import LayerGradCam, Saliency
from deel.torchlip import GroupSort2 as TorchlipGroupSort2
from torch import nn

import otnn_plugin
from otnn_plugin.layers import GroupSort2, SpectralConv2d, SpectralLinear, group_sort2
from otnn_plugin.models import VGGNet, VGGSpec
from otnn_plugin.orthogonal import OrthogonalConv2d
from otnn_plugin.lipschitz import explaining, input_gradient_norms, is_otnn, layer_operator_norms, output_gap_lipschitz

from .conftest import train_a_little

PAIRS = ["vgg_fashionmnist", "vgg_fashionmnist_small", "vgg_fashionmnist_shallow", "vgg_fashionmnist_gnp", "vgg_celeba",
         "vgg_celeba_small", "vgg_celeba_gnp", "vgg_imagenet", "mlp_snowflake"]
#: Small inputs keep the suite fast; the Lipschitz property does not depend on the input size. The ImageNet stack
#: keeps its depth and five halvings at 32x32, its widths divided by 4 (and 10 classes: the gradient check takes
#: one backward pass per class).
TEST_KWARGS = {"vgg_celeba": dict(img_size=(64, 48)), "vgg_celeba_small": dict(img_size=(64, 48)),
               "vgg_celeba_gnp": dict(img_size=(37, 29)),  # cropped to 32x24 inside the model
               "vgg_imagenet": dict(img_size=32, width_divisor=4, num_classes=10)}
TOL = 1e-3
#: (pair, model arguments): every VGG pair with the default orthogonal convolutions and with the paper's spectral ones.
VARIANTS = [(p, {}) for p in PAIRS] + [(p, {"conv": "spectral"}) for p in PAIRS if p.startswith("vgg")]
CONVS = (nn.Conv2d, OrthogonalConv2d)


def build(name: str, **kwargs) -> nn.Module:
    pair = name.split("_", 1)[1]
    return timm.create_model(name, **{**TEST_KWARGS.get(pair, {}), **kwargs})


def sample_shape(model: nn.Module) -> tuple[int, ...]:
    chans = model.pretrained_cfg["input_size"][0]
    return (chans, *model.img_size) if isinstance(model, VGGNet) else (chans,)


def test_list_models_and_pretrained_cfg():
    assert timm.list_models("otnn_*") == sorted(f"otnn_{p}" for p in PAIRS)
    assert timm.list_models("unconstrained_*") == sorted(f"unconstrained_{p}" for p in PAIRS)
    for name in timm.list_models("otnn_*") + timm.list_models("unconstrained_*"):
        cfg = build(name).pretrained_cfg
        assert cfg["paper_ids"] == "arXiv:2206.06854"
        assert cfg["license"] in ("mit", "other")
        assert len(cfg["mean"]) == len(cfg["std"]) == cfg["input_size"][0]
    celeba = build("otnn_vgg_celeba").pretrained_cfg
    assert celeba["input_size"] == (3, 109, 89) and celeba["num_classes"] == 22
    assert celeba["label_names"][12] == "Mustache" and "non-commercial" in celeba["notes"][0]
    fashion = timm.create_model("otnn_vgg_fashionmnist").pretrained_cfg
    assert fashion["input_size"] == (1, 28, 28) and fashion["num_classes"] == 10


@pytest.mark.parametrize("conv, stride_kernel", [("spectral", 3), ("bcop", 2)])
def test_layer_sizes_follow_the_paper_tables(conv, stride_kernel):
    fashion = timm.create_model("otnn_vgg_fashionmnist", conv=conv)
    convs = [m for m in fashion.modules() if isinstance(m, CONVS)]
    assert [c.out_channels for c in convs] == [96] * 4 + [192] * 4 + [384] * 3
    assert [c.stride[0] for c in convs] == [1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1]
    assert [c.kernel_size[0] for c in convs if c.stride[0] == 2] == [stride_kernel] * 2
    assert fashion.forward_features(torch.rand(1, 1, 28, 28)).shape == (1, 384, 7, 7)
    celeba = timm.create_model("otnn_vgg_celeba", conv=conv, img_size=(218, 178))  # paper input 218x178
    assert celeba.num_features == 128 * 6 * 5  # Table 6: 6x5x128 before the dense layers
    half = timm.create_model("unconstrained_vgg_celeba")  # the shipped weights' 109x89
    assert half.num_features == 128 * 3 * 2
    assert half(torch.rand(2, 3, 109, 89)).shape == (2, 22)
    assert [m.out_features for m in half.modules() if isinstance(m, nn.Linear)] == [256, 256, 22]


@pytest.mark.parametrize("pair, kwargs", VARIANTS)
def test_twins_have_the_same_layer_sizes(pair, kwargs):
    otnn, twin = build(f"otnn_{pair}", **kwargs), build(f"unconstrained_{pair}")
    widths = lambda m: [tuple(x.weight.shape[:2]) for x in m.modules() if isinstance(x, (*CONVS, nn.Linear))]
    assert widths(otnn) == widths(twin)
    if kwargs.get("conv") == "spectral":  # the paper's layers: same kernels too
        shapes = lambda m: [tuple(x.weight.shape) for x in m.modules() if isinstance(x, (*CONVS, nn.Linear))]
        assert shapes(otnn) == shapes(twin)
    assert is_otnn(otnn) and not is_otnn(twin)


@pytest.mark.parametrize("pair, kwargs", VARIANTS)
def test_otnn_is_1_lipschitz(pair, kwargs):
    model = build(f"otnn_{pair}", **kwargs)
    shape = sample_shape(model)
    train_a_little(model, shape)
    inputs = torch.rand(4, *shape)
    grads = input_gradient_norms(model, inputs)
    layers = layer_operator_norms(model, shape, n_iter=60)
    if getattr(model, "head_type", "orthogonal") == "disjoint":  # each row of unit norm, not the whole layer
        assert torch.allclose(model.head.weight.norm(dim=1), torch.ones(model.num_classes), atol=1e-4)
        del layers["head"]
    assert grads.max() <= 1 + TOL, f"max ||grad f_k|| = {grads.max():.5f}"
    assert max(layers.values()) <= 1 + TOL, max(layers.items(), key=lambda kv: kv[1])
    print(f"{pair}: mean ||grad f_k|| = {grads.mean():.4f}, max layer norm = {max(layers.values()):.4f}")


@pytest.mark.parametrize("head", ["orthogonal", "disjoint"])
def test_each_head_is_1_lipschitz_and_output_gaps_respect_their_bound(head):
    """Orthogonal heads (orthonormal rows) keep the whole output 1-Lipschitz; disjoint heads (unit rows) only each
    ``f_k``, so ``f_i - f_j`` is 2-Lipschitz, not sqrt(2): the certified radius divides by the right bound."""
    model = build("otnn_vgg_fashionmnist_small", head=head)
    train_a_little(model, (1, 28, 28))
    with torch.no_grad():  # two opposite rows: the worst case for a gap, possible with disjoint heads only
        model.head.parametrizations.weight.original[1] = -model.head.parametrizations.weight.original[0]
    inputs = torch.rand(8, 1, 28, 28)
    assert input_gradient_norms(model, inputs).max() <= 1 + TOL
    layers = layer_operator_norms(model, (1, 28, 28), n_iter=60)
    assert max(norm for name, norm in layers.items() if name != "head") <= 1 + TOL
    assert torch.allclose(model.head.weight.norm(dim=1), torch.ones(10), atol=1e-4)
    if head == "disjoint":  # opposite rows lift the head's norm to sqrt(2) at least; each f_k stays 1-Lipschitz
        assert layer_operator_norms(model, (1, 28, 28), n_iter=60)["head"] > 1.4
        assert otnn_plugin.lipschitz_report(model, inputs)["max_layer_norm"] <= 1 + TOL
    with explaining(model):
        x = inputs.clone().requires_grad_(True)
        out = model(x)
        (grad,) = torch.autograd.grad((out[:, 0] - out[:, 1]).sum(), x)
    gap_norms = grad.flatten(1).norm(dim=1)
    assert gap_norms.max() <= output_gap_lipschitz(model) + TOL
    assert output_gap_lipschitz(model) == (2.0 if head == "disjoint" else math.sqrt(2))
    if head == "disjoint":  # opposite rows: on gradient-preserving features the gap's slope reaches 2, past sqrt(2)
        assert torch.isclose((model.head.weight[0] - model.head.weight[1]).norm(), torch.tensor(2.0), atol=1e-4)
    exported = otnn_plugin.export_vanilla(model)
    with torch.no_grad():
        assert (exported(inputs) - model.eval()(inputs)).abs().max() <= 1e-5
    assert output_gap_lipschitz(exported) == output_gap_lipschitz(model)


def test_the_gradient_norm_preserving_otnn_has_unit_gradients_at_every_input():
    """Issue 18: space-to-depth, square orthogonal convolutions, GroupSort2 and narrowing dense layers all have
    orthonormal Jacobian rows, so each unit-norm head has ``||grad f_k|| = 1`` exactly, trained or not; with the
    paper's SpectralConv2d (not orthogonal) or a widening first stage it falls below 1."""
    model = build("otnn_vgg_fashionmnist_gnp")
    train_a_little(model, (1, 28, 28))
    inputs = torch.cat([torch.rand(6, 1, 28, 28), torch.zeros(1, 1, 28, 28), torch.randn(1, 1, 28, 28) * 10])
    norms = input_gradient_norms(model, inputs)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4), norms.min()
    spectral = build("otnn_vgg_fashionmnist_gnp", conv="spectral")
    train_a_little(spectral, (1, 28, 28))
    assert input_gradient_norms(spectral, inputs).mean() < 0.9
    widening = VGGNet(VGGSpec(((8,), (16,)), "unshuffle", global_pool=False, hidden=(64,)), lipschitz=True,
                      head="disjoint")  # 1x28x28 -> 8x14x14: the first convolution widens twofold
    assert input_gradient_norms(widening, inputs).mean() < 0.99
    cropped = build("otnn_vgg_fashionmnist_gnp", img_size=30)  # the centre 28x28 is kept, still norm-preserving
    train_a_little(cropped, (1, 30, 30))
    norms = input_gradient_norms(cropped, torch.rand(4, 1, 30, 30))
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    with pytest.raises(ValueError, match="too small for 2 space-to-depth steps"):
        build("otnn_vgg_fashionmnist_gnp", img_size=3)


def test_lipschitz_checks_catch_an_unconstrained_network():
    twin = build("unconstrained_mlp_snowflake")
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(3)
    assert input_gradient_norms(twin, torch.rand(8, 2)).max() > 1 + TOL
    assert max(layer_operator_norms(twin, (2,)).values()) > 1 + TOL


def test_layer_operator_norm_of_a_known_convolution():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)  # the box filter: its norm on an n x n grid approaches 9 as n grows
    norm = layer_operator_norms(nn.Sequential(conv), (1, 32, 32), n_iter=200)["0"]
    assert 8.9 < norm <= 9.0


def test_group_sort2_matches_torchlip_forward_and_backward():
    x = torch.randn(3, 8, 5, 5, requires_grad=True)
    ours, theirs = GroupSort2()(x), TorchlipGroupSort2()(x)
    assert torch.equal(ours, theirs)
    weights = torch.randn_like(ours)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), x)
    assert torch.equal(g_ours, g_theirs)
    dense = torch.randn(4, 6)
    assert torch.equal(group_sort2(dense), TorchlipGroupSort2()(dense))
    with pytest.raises(ValueError, match="even number of channels"):
        group_sort2(torch.randn(2, 3))


@pytest.mark.parametrize("pair, kwargs", VARIANTS)
def test_export_vanilla_equals_the_otnn(pair, kwargs):
    model = build(f"otnn_{pair}", **kwargs)
    shape = sample_shape(model)
    train_a_little(model, shape)
    model.train()
    exported = otnn_plugin.export_vanilla(model)
    assert model.training, "export must not change the mode of the model it copies"
    assert not any(isinstance(m, (SpectralConv2d, SpectralLinear, OrthogonalConv2d)) for m in exported.modules())
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in exported.modules())
    assert is_otnn(exported)
    inputs = torch.rand(4, *shape)
    with torch.no_grad():
        assert (exported(inputs) - model.eval()(inputs)).abs().max() <= 1e-5


def test_export_refuses_an_unconstrained_model():
    with pytest.raises(ValueError, match="only OTNNs"):
        otnn_plugin.export_vanilla(build("unconstrained_mlp_snowflake"))


@pytest.mark.parametrize("name", ["otnn_vgg_fashionmnist_small", "unconstrained_vgg_celeba_small",
                                  "otnn_vgg_fashionmnist_gnp"])
def test_timm_api(name):
    model = build(name, num_classes=5, in_chans=2)
    shape = (2, *model.img_size)
    x = torch.rand(2, *shape)
    assert model(x).shape == (2, 5)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, model.head_hidden_size)
    assert model.get_classifier() is model.head
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    features = build(name, in_chans=2, features_only=True)
    maps = features(x)
    assert [m.shape[1] for m in maps] == features.feature_info.channels()
    assert [math.ceil(x.shape[-1] / r) for r in features.feature_info.reduction()] == [m.shape[-1] for m in maps]


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="too small"):
        timm.create_model("otnn_vgg_celeba", img_size=(16, 16))
    with pytest.raises(ValueError, match="head must be one of orthogonal, disjoint"):
        timm.create_model("otnn_vgg_fashionmnist_small", head="frobenius")
    with pytest.raises(ValueError, match="even hidden widths"):
        timm.create_model("otnn_mlp_snowflake", hidden=(3,))
    with pytest.raises(ValueError, match="batch, features"):
        timm.create_model("otnn_mlp_snowflake")(torch.rand(2, 2, 3))


@pytest.mark.parametrize("name", ["otnn_vgg_fashionmnist_small", "unconstrained_vgg_fashionmnist_small"])
def test_captum_saliency_and_layer_gradcam(name):
    model = timm.create_model(name)
    x = torch.rand(3, 1, 28, 28)
    with explaining(model):
        saliency = Saliency(model).attribute(x, target=2)
        last = model.get_submodule(model.feature_info[-1]["module"])
        cam = LayerGradCam(model, last).attribute(x, target=2)
    assert saliency.shape == x.shape and torch.isfinite(saliency).all() and saliency.abs().sum() > 0
    assert cam.shape == (3, 1, 7, 7) and torch.isfinite(cam).all()
    assert model.training is True  # explaining() restored the mode


def test_explaining_puts_the_model_in_eval_and_keeps_weights():
    model = build("otnn_mlp_snowflake")
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with explaining(model):
        assert not any(m.training for m in model.modules())
        model(torch.rand(4, 2))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    model(torch.rand(4, 2))  # a training-mode forward moves the power-iteration state
    assert not all(torch.equal(state[k], v) for k, v in model.state_dict().items())
