"""One explanation function with Quantus's contract, for the paper's attribution methods and settings (A.4.1).

``explain(model, inputs, targets, method, **settings)`` takes numpy or torch inputs and returns a numpy array
shaped like ``inputs``; pass it to any Quantus metric as ``explain_func`` with
``explain_func_kwargs={"method": ...}``. Everything runs batched on the model's device, in eval mode.

Methods and defaults (the paper's, overridable through ``settings``):

* ``transport``: the signed gradient ``grad_x f(x)``, the transport-plan direction (Prop. 1).
* ``saliency``: the absolute gradient ``|grad_x f(x)|``.
* ``gradient_x_input``: the signed ``x * grad_x f(x)``.
* ``smoothgrad``: the absolute mean gradient ``|E[grad_x f(x + delta)]|``, ``delta ~ N(0, sigma^2 I)``, N = 50,
  sigma = 0.2; absolute like Saliency, which the paper's Tables 1 and 2 need (Saliency within 0.01 of SmoothGrad).
* ``smoothgrad_signed``: the signed mean ``E[grad_x f(x + delta)]`` (A.4.1's formula as written).
* ``integrated_gradients``: signed, 50 regular steps from a zero baseline, trapezoidal rule (as Xplique).
* ``gradcam``: Captum's ``LayerGradCam`` on the last feature stage of a timm model, upsampled bilinearly (ReLU:
  non-negative).
* ``rise``: :class:`~otnn_plugin.explainers.Rise` with N = 4000 masks, signed as the model's scores are.

``batch_size`` is always the number of images in one forward pass.

``@register_explainer`` adds a method, named after the function: ``method(model, inputs, target, *, settings...)``
takes a batch on the model's device and int64 targets, and returns attributions shaped like ``inputs``; its
keyword-only parameters are its settings.
"""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np
import torch
from captum.attr import LayerGradCam
from torch import Tensor, nn
from torch.nn import functional as F

from .._finite import check_model_outputs
from .._registry import Registry
from ..lipschitz import explaining
from ._inputs import Target, check_inputs, format_target, select_scores
from .rise import Rise
from .transport import target_gradient

__all__ = ["explain", "EXPLAIN_METHODS", "register_explainer"]

#: The methods ``explain`` accepts by name (iterating gives the sorted names).
EXPLAIN_METHODS: Registry[Callable[..., Tensor]] = Registry("explanation method")
register_explainer = EXPLAIN_METHODS.register


@register_explainer
def transport(model: nn.Module, inputs: Tensor, target: Tensor) -> Tensor:
    """Signed gradient of the target output, the transport-plan direction (paper Prop. 1)."""
    return target_gradient(model, inputs, target)[1]


@register_explainer
def saliency(model: nn.Module, inputs: Tensor, target: Tensor) -> Tensor:
    """Saliency map, absolute: ``|grad_x f(x)|`` (paper A.4.1)."""
    return transport(model, inputs, target).abs()


@register_explainer
def gradient_x_input(model: nn.Module, inputs: Tensor, target: Tensor) -> Tensor:
    """Gradient times input, signed: ``x * grad_x f(x)``."""
    return inputs * transport(model, inputs, target)


def _weighted_gradients(
    model: nn.Module, inputs: Tensor, target: Tensor, weights: Tensor, points: Callable[[int, int], Tensor],
    batch_size: int,
) -> Tensor:
    """``sum_j weights[j] * grad f(points_j)``, where ``points(start, count)`` gives ``count`` copies of the batch.

    The copies go through the model ``batch_size`` images at a time (at least one copy of the batch).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size (images per forward pass) must be >= 1, got {batch_size}")
    copies_per_pass = max(1, batch_size // len(inputs))
    total = torch.zeros_like(inputs)
    for start in range(0, len(weights), copies_per_pass):
        chunk_weights = weights[start:start + copies_per_pass]
        chunk = points(start, len(chunk_weights))
        gradients = transport(model, chunk.flatten(0, 1), target.repeat(len(chunk_weights))).view_as(chunk)
        total += torch.tensordot(chunk_weights, gradients, dims=1)
    return total


@register_explainer
def smoothgrad_signed(
    model: nn.Module, inputs: Tensor, target: Tensor, *, n_samples: int = 50, sigma: float = 0.2,
    batch_size: int = 256, seed: int = 0,
) -> Tensor:
    """Signed SmoothGrad (A.4.1): the mean gradient over ``n_samples`` Gaussian perturbations of std ``sigma``."""
    if n_samples < 1 or sigma < 0:
        raise ValueError(f"smoothgrad needs n_samples >= 1 and sigma >= 0, got {n_samples} and {sigma}")
    generator = torch.Generator(device=inputs.device).manual_seed(seed)

    def noisy(start: int, count: int) -> Tensor:
        noise = torch.randn((count, *inputs.shape), generator=generator, device=inputs.device, dtype=inputs.dtype)
        return inputs + sigma * noise

    weights = inputs.new_full((n_samples,), 1 / n_samples)
    return _weighted_gradients(model, inputs, target, weights, noisy, batch_size)


@register_explainer
def smoothgrad(
    model: nn.Module, inputs: Tensor, target: Tensor, *, n_samples: int = 50, sigma: float = 0.2,
    batch_size: int = 256, seed: int = 0,
) -> Tensor:
    """Absolute SmoothGrad ``|smoothgrad_signed|``, comparable with Saliency ``|grad f|`` (Tables 1-3, 10, 11)."""
    return smoothgrad_signed(
        model, inputs, target, n_samples=n_samples, sigma=sigma, batch_size=batch_size, seed=seed
    ).abs()


@register_explainer
def integrated_gradients(
    model: nn.Module, inputs: Tensor, target: Tensor, *, n_steps: int = 50, batch_size: int = 256
) -> Tensor:
    """Integrated Gradients, signed, from a zero baseline: ``n_steps`` points from 0 to ``x``, trapezoidal rule.

    This is Xplique's rule, used by the paper (A.4.1). Captum's ``riemann_trapezoid`` weights sum to
    ``(n - 1) / n`` instead of 1, so it is not used here.
    """
    if n_steps < 2:
        raise ValueError(f"integrated_gradients needs n_steps >= 2 (both ends of the path), got {n_steps}")
    alphas = torch.linspace(0, 1, n_steps, device=inputs.device, dtype=inputs.dtype)
    weights = inputs.new_full((n_steps,), 1 / (n_steps - 1))
    weights[[0, -1]] /= 2

    def path(start: int, count: int) -> Tensor:
        return alphas[start:start + count].view(-1, *(1,) * inputs.dim()) * inputs

    return inputs * _weighted_gradients(model, inputs, target, weights, path, batch_size)


@register_explainer
def gradcam(model: nn.Module, inputs: Tensor, target: Tensor, *, layer: str | None = None) -> Tensor:
    """Grad-CAM on ``layer`` (default: the last stage in timm's ``feature_info``), upsampled to the input size;
    non-negative (ReLU)."""
    if inputs.dim() != 4:
        raise ValueError(f"gradcam explains images (N, C, H, W), got inputs of shape {tuple(inputs.shape)}")
    if layer is None:
        feature_info = getattr(model, "feature_info", None)
        if not feature_info:
            raise ValueError(
                f"{type(model).__name__} has no timm feature_info to find its last conv stage: "
                "pass layer='name.of.module' (a name from model.named_modules())"
            )
        layer = feature_info[-1]["module"]
    try:
        module = model.get_submodule(layer)
    except AttributeError as err:
        raise ValueError(
            f"{type(model).__name__} has no submodule {layer!r}: pick one from model.named_modules()"
        ) from err
    cam = LayerGradCam(model, module).attribute(inputs, target=target, relu_attributions=True)
    cam = F.interpolate(cam, size=inputs.shape[2:], mode="bilinear", align_corners=False)
    return cam.expand_as(inputs)


@register_explainer
def rise(
    model: nn.Module, inputs: Tensor, target: Tensor, *, n_masks: int = 4000, grid_size: int = 7,
    probability: float = 0.5, batch_size: int = 256, seed: int = 0, center: bool = False, precision: str = "fp32",
) -> Tensor:
    """RISE with the paper's N = 4000 masks (A.4.1), signed as the scores are; ``center`` subtracts the mean masked
    score; ``precision``: ``"fp32"`` or ``"bf16"`` forward passes."""
    return Rise(model).attribute(
        inputs, target, n_masks=n_masks, grid_size=grid_size, probability=probability, batch_size=batch_size,
        seed=seed, center=center, precision=precision,
    )


def _settings_of(method: Callable[..., Tensor]) -> tuple[str, ...]:
    return tuple(p.name for p in inspect.signature(method).parameters.values() if p.kind is p.KEYWORD_ONLY)


def _device_and_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model's parameters live and their dtype (CPU and the default dtype for a parameter-free model)."""
    for parameter in model.parameters():
        return parameter.device, parameter.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def explain(
    model: nn.Module,
    inputs: np.ndarray | Tensor,
    targets: Target,
    method: str,
    device: str | torch.device | None = None,
    **settings,
) -> np.ndarray:
    """Explain ``model`` on ``inputs`` for ``targets`` with ``method``; a float32 numpy array shaped like ``inputs``.

    ``targets`` follows Captum (one index for all samples or one per sample; ``None`` for a single-output
    model). ``device`` is accepted because Quantus passes it; the work runs on the model's device, which must
    match it. ``settings`` override the method's defaults (see the module docstring). Inputs, and the model's
    outputs on them (one forward pass without gradients), must be finite: a ``ValueError`` names the samples that
    are not.
    """
    function = EXPLAIN_METHODS.get(method)
    unknown = sorted(set(settings) - set(_settings_of(function)))
    if unknown:
        accepted = ", ".join(_settings_of(function)) or "none"
        raise ValueError(f"method {method!r} has no setting {', '.join(unknown)}; its settings: {accepted}")
    model_device, dtype = _device_and_dtype(model)
    if device is not None and torch.device(device).type != model_device.type:
        raise ValueError(
            f"the model is on {model_device} but device={str(device)!r} was asked: move the model there "
            f"(model.to({str(device)!r})) or pass the model's device"
        )
    x = check_inputs(torch.as_tensor(inputs, dtype=dtype).detach().to(model_device), model)
    with explaining(model):
        target = format_target(targets, len(x), model_device)
        with torch.no_grad():  # one forward: a broken model gives one clear error, not a plausible map
            outputs = model(x)
        check_model_outputs(outputs)
        if target is None:  # only a single-output model may leave it out: check, then explain its output 0
            select_scores(outputs, None)
            target = torch.zeros(len(x), dtype=torch.long, device=model_device)
        attributions = function(model, x, target, **settings)
    return attributions.detach().to("cpu", torch.float32).contiguous().numpy()
