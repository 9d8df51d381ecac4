"""Transport counterfactuals, RISE and the Quantus explain function (issue 7)."""
from __future__ import annotations

import numpy as np
import pytest
import quantus
import timm
import torch
from captum.attr import NoiseTunnel, Saliency
from torch import nn

from otnn_plugin import explain, export_vanilla
from otnn_plugin.explainers import EXPLAIN_METHODS, Rise, TransportCounterfactual, rise_masks


def linear(weight: list[list[float]], bias: list[float]) -> nn.Linear:
    """A dense layer with the given weights: a model whose gradients are known by hand."""
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


class RegionMean(nn.Module):
    """One output: the mean of the input over rows 2:8 and columns 3:9, nothing else."""

    rows, cols = slice(2, 8), slice(3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, self.rows, self.cols].mean(dim=(1, 2, 3))[:, None]


class SumOfSquares(nn.Module):
    """One output, ``sum_i x_i^2``, and no parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.pow(2).flatten(1).sum(1, keepdim=True)


class MeanThroughConv(nn.Module):
    """``f(x) = mean(x)`` computed as a 1x1 identity convolution (the Grad-CAM layer) and a global average."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 1, kernel_size=1, bias=False)
        nn.init.ones_(self.features.weight)
        self.feature_info = [dict(num_chs=1, reduction=1, module="features")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def otnn() -> nn.Module:
    """A random OTNN whose images get distinct last-stage features: SpectralConv2d from deel-torchlip's orthogonal
    start (a random BCOP or smooth start gives every image nearly the same features, and Grad-CAM maps of zero)."""
    torch.manual_seed(0)
    return timm.create_model("otnn_vgg_fashionmnist_small", conv="spectral", conv_init="orthogonal").eval()


@pytest.fixture(scope="module")
def unconstrained() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("unconstrained_vgg_fashionmnist_small").eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 1, 28, 28)


# --- TransportCounterfactual.attribute -------------------------------------------------------------------------


@pytest.mark.parametrize("absolute", [True, False])
def test_attribute_equals_captum_saliency(otnn, images, absolute):
    target = [0, 3, 7, 9]
    ours = TransportCounterfactual(otnn).attribute(images, target=target, abs=absolute)
    captum = Saliency(otnn).attribute(images.clone().requires_grad_(True), target=target, abs=absolute)
    assert ours.shape == images.shape
    torch.testing.assert_close(ours, captum, rtol=1e-5, atol=0)


def test_attribute_is_signed_by_default():
    model = linear([[0.6, -0.8]], [0.0])
    gradient = TransportCounterfactual(model).attribute(torch.ones(2, 2))
    torch.testing.assert_close(gradient, torch.tensor([[0.6, -0.8], [0.6, -0.8]]))


def test_attribute_runs_in_eval_mode_and_restores_modes(unconstrained, images):
    reference = Saliency(unconstrained).attribute(images.clone().requires_grad_(True), target=2, abs=False)
    running_mean = unconstrained.features[1].running_mean.clone()
    unconstrained.train()
    try:
        gradient = TransportCounterfactual(unconstrained).attribute(images, target=2)
        assert all(m.training for m in unconstrained.modules())
    finally:
        unconstrained.eval()
    torch.testing.assert_close(gradient, reference)
    torch.testing.assert_close(unconstrained.features[1].running_mean, running_mean, rtol=0, atol=0)


def test_noise_tunnel_averages_transport_gradients():
    model = nn.Sequential(nn.Flatten(), linear([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.0, 2.0]], [0.0, 1.0]))
    inputs = torch.rand(2, 1, 2, 2)
    tunnel = NoiseTunnel(TransportCounterfactual(model))
    smooth = tunnel.attribute(inputs, nt_type="smoothgrad", nt_samples=5, stdevs=0.5, target=[1, 0])
    # The gradient of a linear model is its weight row wherever the noise puts the input.
    expected = torch.tensor([[-1.0, 0.5, 0.0, 2.0], [1.0, 2.0, 3.0, 4.0]]).view(2, 1, 2, 2)
    torch.testing.assert_close(smooth, expected)
    variance = tunnel.attribute(inputs, nt_type="vargrad", nt_samples=5, stdevs=0.5, target=[1, 0])
    torch.testing.assert_close(variance, torch.zeros_like(inputs))


def test_noise_tunnel_runs_on_an_otnn(otnn, images):
    smooth = NoiseTunnel(TransportCounterfactual(otnn)).attribute(
        images, nt_type="smoothgrad", nt_samples=4, nt_samples_batch_size=2, stdevs=0.1, target=1, abs=True
    )
    assert smooth.shape == images.shape and torch.isfinite(smooth).all() and (smooth >= 0).all()


def test_guarantees_refuse_an_unconstrained_model(otnn, unconstrained):
    with pytest.raises(ValueError, match="1-Lipschitz"):
        TransportCounterfactual(unconstrained, guarantees=True)
    assert TransportCounterfactual(otnn, guarantees=True).guarantees
    assert not TransportCounterfactual(unconstrained).guarantees


# --- TransportCounterfactual.counterfactual --------------------------------------------------------------------


def test_counterfactual_reaches_the_boundary_of_a_unit_gradient_model():
    # f(x) = 0.6 x0 + 0.8 x1 - 1 has a unit gradient: x - f(x) grad f lands on f = 0 (paper Prop. 2).
    model = linear([[0.6, 0.8]], [-1.0])
    inputs = torch.tensor([[1.0, 2.0], [0.0, 0.0]])  # f = 1.2 and -1.0
    result = TransportCounterfactual(model).counterfactual(inputs, return_scores=True)
    # 1 - 1.2 * 0.6, 2 - 1.2 * 0.8; and 0 + 1.0 * 0.6, 0 + 1.0 * 0.8
    torch.testing.assert_close(result.inputs, torch.tensor([[0.28, 1.04], [0.6, 0.8]]))
    torch.testing.assert_close(result.scores, torch.tensor([1.2, -1.0]))
    torch.testing.assert_close(result.counterfactual_scores, torch.zeros(2), rtol=0, atol=1e-6)
    assert result.step == "gradient"


def test_newton_step_reaches_the_boundary_where_the_gradient_norm_is_below_one():
    model = linear([[0.3, 0.4]], [0.0])  # ||grad f|| = 0.5
    inputs = torch.tensor([[2.0, 1.0]])  # f = 0.6 + 0.4 = 1.0
    explainer = TransportCounterfactual(model)
    paper = explainer.counterfactual(inputs, return_scores=True)
    torch.testing.assert_close(paper.inputs, torch.tensor([[1.7, 0.6]]))  # 2 - 0.3, 1 - 0.4
    torch.testing.assert_close(paper.counterfactual_scores, torch.tensor([0.75]))  # 0.3 * 1.7 + 0.4 * 0.6
    newton = explainer.counterfactual(inputs, step="newton", return_scores=True)
    torch.testing.assert_close(newton.inputs, torch.tensor([[0.8, -0.6]]))  # 2 - 0.3 / 0.25, 1 - 0.4 / 0.25
    torch.testing.assert_close(newton.counterfactual_scores, torch.zeros(1), rtol=0, atol=1e-6)
    assert newton.step == "newton"
    crossed = explainer.counterfactual(inputs, t=2.0, step="newton", return_scores=True)
    torch.testing.assert_close(crossed.counterfactual_scores, torch.tensor([-1.0]))  # 1 - 2 * 1


def test_targeted_counterfactual_moves_each_sample_towards_its_target_class():
    model = linear([[1.0, 0.0], [0.0, 1.0]], [0.0, -1.0])  # f0 = x0, f1 = x1 - 1 (one-versus-all potentials)
    inputs = torch.tensor([[3.0, 0.0], [0.5, 4.0]])
    moved = TransportCounterfactual(model).counterfactual(inputs, target=[1, 0])
    # sample 0: f1 = -1, x + 1 * (0, 1); sample 1: f0 = 0.5, x - 0.5 * (1, 0)
    torch.testing.assert_close(moved, torch.tensor([[3.0, 1.0], [0.0, 4.0]]))
    crossed = TransportCounterfactual(model).counterfactual(inputs, target=torch.tensor([1, 0]), t=10.0)
    assert model(crossed)[0, 1] > 0 and model(crossed)[1, 0] < 0


def test_counterfactual_moves_an_otnn_score_no_more_than_the_distance_travelled():
    torch.manual_seed(0)
    model = timm.create_model("otnn_mlp_snowflake")
    inputs = torch.randn(64, 2)
    result = TransportCounterfactual(model, guarantees=True).counterfactual(inputs, t=3.0, return_scores=True)
    travelled = (result.inputs - inputs).norm(dim=1)
    gradient_norm = TransportCounterfactual(model).attribute(inputs).norm(dim=1)
    torch.testing.assert_close(travelled, 3.0 * result.scores.abs() * gradient_norm)
    assert ((result.counterfactual_scores - result.scores).abs() <= travelled * (1 + 1e-4) + 1e-6).all()
    assert (result.counterfactual_scores - result.scores).abs().max() > 0


def test_counterfactual_rejects_bad_arguments(otnn, images):
    explainer = TransportCounterfactual(otnn)
    with pytest.raises(ValueError, match="step"):
        explainer.counterfactual(images, target=0, step="jump")
    with pytest.raises(ValueError, match="pass target"):
        explainer.counterfactual(images)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        explainer.counterfactual(images, target=10)
    with pytest.raises(ValueError, match="one index per sample"):
        explainer.counterfactual(images, target=[0, 1])
    with pytest.raises(ValueError, match="integer"):
        explainer.attribute(images, target=1.0)
    with pytest.raises(ValueError, match="torch.Tensor"):
        explainer.attribute((images,), target=0)


# --- RISE ------------------------------------------------------------------------------------------------------


def test_rise_matches_its_definition_whatever_the_batch_size():
    weights = torch.randn(3 * 10 * 12, 2)
    inputs = torch.rand(2, 3, 10, 12)

    def model(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ weights

    saliency = Rise(model).attribute(
        inputs, target=[1, 0], n_masks=37, grid_size=3, probability=0.4, batch_size=5, seed=1
    )
    masks = rise_masks(37, (10, 12), grid_size=3, probability=0.4, seed=1)
    expected = torch.zeros(2, 10, 12)
    for mask in masks:  # sum_i f(x * M_i) M_i / (N p), one mask at a time
        scores = model(inputs * mask)
        expected += torch.stack([scores[0, 1] * mask, scores[1, 0] * mask])
    expected /= 37 * 0.4
    assert saliency.shape == inputs.shape
    torch.testing.assert_close(saliency, expected[:, None].expand_as(inputs), rtol=1e-4, atol=1e-5)


def test_centered_rise_subtracts_the_mean_masked_score_and_keeps_an_all_negative_model_two_signed():
    weights = -torch.rand(3 * 10 * 12, 1)  # every masked image of a positive input scores negative
    inputs = torch.rand(2, 3, 10, 12)

    def model(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ weights - 1.0

    settings = {"n_masks": 40, "grid_size": 3, "probability": 0.4, "batch_size": 7, "seed": 2}
    raw = Rise(model).attribute(inputs, **settings)
    centered = Rise(model).attribute(inputs, center=True, **settings)
    masks = rise_masks(40, (10, 12), grid_size=3, probability=0.4, seed=2)
    scores = torch.stack([model(inputs * mask)[:, 0] for mask in masks], dim=1)  # (2, 40)
    expected = raw[:, 0] - scores.mean(1)[:, None, None] * masks.sum(0) / (40 * 0.4)
    torch.testing.assert_close(centered[:, 0], expected, rtol=1e-4, atol=1e-5)
    assert (raw < 0).all()
    assert (centered < 0).any() and (centered > 0).any()


@pytest.mark.parametrize("center", [False, True])
def test_rise_on_convolutional_networks_equals_the_definition_and_leaves_them_as_they_were(
        otnn, unconstrained, images, center):
    """channels_last and inference_mode change the float summation order only (the previous implementation ran the
    same arithmetic in the default layout); the model's parameters are the very same tensors afterwards."""
    target = torch.tensor([0, 3, 7, 9])
    masks = rise_masks(48, (28, 28), seed=5)
    for model in (export_vanilla(otnn), unconstrained):
        before = [(p.data_ptr(), p.stride()) for p in model.parameters()]
        saliency = Rise(model).attribute(images, target, n_masks=48, batch_size=64, seed=5, center=center)
        assert [(p.data_ptr(), p.stride()) for p in model.parameters()] == before
        with torch.no_grad():  # all 4 x 48 masked images in one pass, default layout
            outputs = model((images[:, None] * masks[None, :, None]).flatten(0, 1)).view(4, 48, -1)
        scores = outputs.gather(2, target[:, None, None].expand(4, 48, 1))[..., 0]
        scale = (scores.abs() @ masks.flatten(1)).max() / (48 * 0.5)  # the size of the terms summed
        scores = scores - scores.mean(1, keepdim=True) if center else scores
        expected = (scores @ masks.flatten(1)).view(4, 1, 28, 28) / (48 * 0.5)
        torch.testing.assert_close(saliency, expected.expand_as(images), rtol=1e-5, atol=1e-5 * scale.item())


def test_rise_in_bf16_stays_close_to_fp32_and_leaves_the_model_in_fp32(otnn, images):
    model = export_vanilla(otnn)
    fp32 = Rise(model).attribute(images, [0, 3, 7, 9], n_masks=64)
    bf16 = Rise(model).attribute(images, [0, 3, 7, 9], n_masks=64, precision="bf16")
    assert bf16.dtype == torch.float32 and all(p.dtype == torch.float32 for p in model.parameters())
    assert not torch.equal(bf16, fp32)
    torch.testing.assert_close(bf16, fp32, rtol=0, atol=0.02 * fp32.abs().max().item())  # bf16: 8 bits of mantissa
    via_explain = explain(model, images, np.array([0, 3, 7, 9]), "rise", n_masks=64, precision="bf16")
    np.testing.assert_array_equal(via_explain, bf16.numpy())


def test_rise_masks_are_smooth_seeded_and_keep_the_probability():
    masks = rise_masks(2000, (28, 28), grid_size=7, probability=0.3, seed=3)
    assert masks.shape == (2000, 28, 28) and masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean().item() - 0.3) < 0.02
    cell = 4  # ceil(28 / 7): bilinear upsampling changes by at most 1 / cell between neighbours
    assert (masks[:, 1:] - masks[:, :-1]).abs().max() <= 1 / cell + 1e-6
    assert (masks[:, :, 1:] - masks[:, :, :-1]).abs().max() <= 1 / cell + 1e-6
    torch.testing.assert_close(rise_masks(5, (28, 28), seed=3), rise_masks(5, (28, 28), seed=3), rtol=0, atol=0)
    assert not torch.equal(rise_masks(5, (28, 28), seed=3), rise_masks(5, (28, 28), seed=4))


def test_rise_puts_its_mass_on_the_region_the_model_reads():
    model = RegionMean()
    saliency = Rise(model).attribute(torch.ones(1, 1, 24, 24), n_masks=1000, grid_size=6, seed=0)[0, 0]
    inside = torch.zeros(24, 24, dtype=torch.bool)
    inside[model.rows, model.cols] = True
    # On a blank image E[f(x * M)] = E[mean of M over the region] = p = 0.5: the saliency of a pixel the model
    # ignores stays near it, while a pixel it reads gains the covariance of its mask value with f.
    excess = saliency - 0.5
    assert excess[inside].mean() > 5 * excess[~inside].mean().abs()
    assert inside.flatten()[saliency.argmax()]
    top = saliency.flatten().topk(int(inside.sum())).indices
    assert inside.flatten()[top].float().mean() > 0.75


def test_rise_rejects_bad_arguments(otnn, images):
    rise = Rise(otnn)
    with pytest.raises(ValueError, match="probability"):
        rise.attribute(images, target=0, probability=0.0)
    with pytest.raises(ValueError, match="n_masks"):
        rise.attribute(images, target=0, n_masks=0)
    with pytest.raises(ValueError, match="batch_size"):
        rise.attribute(images, target=0, batch_size=0)
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        rise.attribute(images, target=0, precision="fp16")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        rise.attribute(images.flatten(1), target=0)


# --- explain (Quantus) -----------------------------------------------------------------------------------------

#: Fewer masks than the paper's 4000, to keep the test fast.
FAST = {"rise": {"n_masks": 64}, "smoothgrad": {"n_samples": 10}, "smoothgrad_signed": {"n_samples": 10}}


@pytest.mark.parametrize("method", EXPLAIN_METHODS)
def test_explain_returns_what_quantus_expects(otnn, images, method):
    targets = np.array([0, 3, 7, 9])
    from_numpy = explain(otnn, images.numpy(), targets, method, **FAST.get(method, {}))
    from_torch = explain(otnn, images, torch.from_numpy(targets), method, **FAST.get(method, {}))
    assert isinstance(from_numpy, np.ndarray) and from_numpy.dtype == np.float32
    assert from_numpy.shape == images.shape
    assert np.isfinite(from_numpy).all() and np.abs(from_numpy).max() > 0
    np.testing.assert_allclose(from_torch, from_numpy, rtol=1e-5, atol=0)


@pytest.mark.parametrize("method", EXPLAIN_METHODS)
def test_explain_runs_inside_quantus_faithfulness_correlation(otnn, images, method):
    metric = quantus.FaithfulnessCorrelation(
        nr_runs=5, subset_size=56, return_aggregate=False, disable_warnings=True, display_progressbar=False
    )
    scores = metric(
        model=otnn, x_batch=images.numpy(), y_batch=np.array([0, 3, 7, 9]), a_batch=None, device="cpu",
        explain_func=explain, explain_func_kwargs={"method": method, **FAST.get(method, {})},
    )
    assert len(scores) == len(images) and np.isfinite(scores).all()


def test_explain_methods_agree_where_they_must(otnn, images):
    transport = explain(otnn, images, 5, "transport")
    np.testing.assert_allclose(explain(otnn, images, 5, "saliency"), np.abs(transport))
    np.testing.assert_allclose(explain(otnn, images, 5, "gradient_x_input"), images.numpy() * transport, rtol=1e-6)
    signed = explain(otnn, images, 5, "smoothgrad_signed", sigma=0.0, n_samples=3)
    np.testing.assert_allclose(signed, transport, rtol=1e-5)
    np.testing.assert_allclose(explain(otnn, images, 5, "smoothgrad", sigma=0.0, n_samples=3), np.abs(signed))
    smooth = explain(otnn, images, 5, "smoothgrad_signed", n_samples=6, batch_size=8)
    np.testing.assert_array_equal(smooth, explain(otnn, images, 5, "smoothgrad_signed", n_samples=6, batch_size=8))
    np.testing.assert_array_equal(np.abs(smooth), explain(otnn, images, 5, "smoothgrad", n_samples=6, batch_size=8))
    assert not np.allclose(smooth, transport, rtol=1e-3, atol=0)
    rise = explain(otnn, images, 5, "rise", n_masks=20, batch_size=7)
    np.testing.assert_allclose(rise, explain(otnn, images, 5, "rise", n_masks=20), rtol=1e-5)


def test_integrated_gradients_of_a_sum_of_squares_are_the_squares():
    # f(x) = sum x_i^2: the gradient at alpha x is 2 alpha x, linear in alpha, so the trapezoidal rule is exact
    # and IG_i = x_i * integral_0^1 2 alpha x_i d alpha = x_i^2 (which also sums to f(x) - f(0)).
    inputs = torch.rand(3, 2, 4, 4) - 0.5
    attributions = explain(SumOfSquares(), inputs, None, "integrated_gradients", n_steps=7, batch_size=4)
    np.testing.assert_allclose(attributions, inputs.numpy() ** 2, rtol=1e-5, atol=1e-7)


def test_smoothgrad_is_absolute_and_ranks_pixels_unlike_the_signed_map():
    """``smoothgrad`` is ``|E[grad f(x + delta)]|`` (compared with Saliency in Tables 1-3), ``smoothgrad_signed`` the
    signed mean. For f = sum x_i^2 the mean gradient is 2 (x + mean delta) ~ 2 x: the signed map ranks the pixels
    of x = (0.5, -0.9, 0.1, -0.3) by value, the absolute one by magnitude."""
    from otnn_plugin.metrics.perturbation import pixel_ranks

    inputs = torch.tensor([[[[0.5, -0.9], [0.1, -0.3]]]])
    signed = explain(SumOfSquares(), inputs, None, "smoothgrad_signed", sigma=0.02, n_samples=50)
    absolute = explain(SumOfSquares(), inputs, None, "smoothgrad", sigma=0.02, n_samples=50)
    np.testing.assert_allclose(signed, 2 * inputs.numpy(), atol=0.02)
    np.testing.assert_array_equal(absolute, np.abs(signed))
    assert pixel_ranks(torch.from_numpy(signed)).tolist() == [[0, 3, 1, 2]]  # 0.5, 0.1, -0.3, -0.9
    assert pixel_ranks(torch.from_numpy(absolute)).tolist() == [[1, 0, 3, 2]]  # 0.9, 0.5, 0.3, 0.1
    np.testing.assert_array_equal(explain(SumOfSquares(), inputs, None, "saliency"), np.abs(2 * inputs.numpy()))


def test_gradcam_of_a_mean_is_the_input_over_its_size():
    # A = x, d mean / dA = 1 / (H W) everywhere, so the map is relu(A / (H W)) = x / (H W) for x >= 0.
    inputs = torch.rand(2, 1, 5, 4)
    cam = explain(MeanThroughConv(), inputs, 0, "gradcam")
    np.testing.assert_allclose(cam, inputs.numpy() / 20, rtol=1e-5)


def test_gradcam_upsamples_the_last_stage_of_a_timm_model(otnn, images):
    cam = explain(otnn, images, 2, "gradcam")
    assert cam.shape == images.shape and (cam >= 0).all()
    deeper = explain(otnn, images, 2, "gradcam", layer="features.1")
    assert not np.allclose(cam, deeper)


def test_explain_keeps_the_model_mode(unconstrained, images):
    unconstrained.train()
    try:
        explain(unconstrained, images, 1, "smoothgrad", n_samples=2)
        assert all(m.training for m in unconstrained.modules())
    finally:
        unconstrained.eval()


def test_explain_rejects_bad_arguments(otnn, images):
    with pytest.raises(ValueError, match="unknown explanation method 'lime'; valid: gradcam, "):
        explain(otnn, images, 0, "lime")
    with pytest.raises(ValueError, match="no setting sigmaa; its settings: n_samples, sigma"):
        explain(otnn, images, 0, "smoothgrad", sigmaa=0.1)
    with pytest.raises(ValueError, match="settings: none"):
        explain(otnn, images, 0, "saliency", n_samples=3)
    with pytest.raises(ValueError, match="feature_info"):
        explain(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), images, 0, "gradcam")
    with pytest.raises(ValueError, match="no submodule"):
        explain(otnn, images, 0, "gradcam", layer="features.99")
    with pytest.raises(ValueError, match="model is on cpu"):
        explain(otnn, images, 0, "saliency", device="cuda")
    with pytest.raises(ValueError, match="10 outputs"):
        explain(otnn, images, None, "integrated_gradients")
