"""Transport (one gradient) against SmoothGrad (50 noisy gradients): cost and distance (paper Sec. 5.1.1, Table 2).

The paper's point: on an OTNN the gradient already is SmoothGrad's explanation, for 1/50 of the cost; on an
unconstrained network the two differ. Both small Fashion-MNIST networks explain the first ``batch`` test images
for their labels. SmoothGrad is the paper's (N = 50, sigma = 0.2, signed mean) and is compared with the signed
gradient: ``1 - Spearman`` on the raw maps, L2 between maps scaled to unit norm (raw L2 would compare the two
networks' gradient scales rather than their maps).

``weights="random"`` uses freshly initialised networks (runs anywhere, says little about trained ones);
``weights="pretrained"`` loads the trained ones (``timm.create_model(..., pretrained=True)``: hub or registry/).

Run: ``python -m benchmarks.bench_explainers [random|pretrained]`` (data from ``$OTNN_DATA_DIR``).
"""
from __future__ import annotations

import sys
from typing import Callable

import timm
import torch
from torch import nn
from torch.nn import functional as F

from otnn_plugin.data import load_dataset, to_tensors
from otnn_plugin.explainers import explain
from otnn_plugin.metrics.distance import explanation_distance

from .timing import compare, print_table, ratio

MODELS = {"otnn": "otnn_vgg_fashionmnist_small", "unconstrained": "unconstrained_vgg_fashionmnist_small"}


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int, device: str) -> dict:
    """Interleaved timings of both methods, and the distances between the maps of their last runs."""
    maps: dict[str, torch.Tensor] = {}

    def explainer(method: str) -> Callable[[], None]:
        def fn() -> None:
            maps[method] = torch.from_numpy(explain(model, x, y, method))
        return fn

    stats = compare({m: explainer(m) for m in ("transport", "smoothgrad")}, repeats, warmup=1, device=device)
    transport, smoothgrad = maps["transport"], maps["smoothgrad"]
    unit_l2 = explanation_distance(
        F.normalize(transport.flatten(1), dim=1), F.normalize(smoothgrad.flatten(1), dim=1), "l2"
    )
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    return {
        "accuracy": accuracy,
        "mean_gradient_norm": transport.flatten(1).norm(dim=1).mean().item(),
        "stats": stats,
        "smoothgrad_over_transport": ratio(stats, "smoothgrad", "transport"),
        "unit_l2": unit_l2.mean().item(),
        "one_minus_spearman": explanation_distance(transport, smoothgrad, "spearman").mean().item(),
    }


def run(weights: str = "random", device: str = "cpu", batch: int = 32, repeats: int = 3) -> dict:
    """Both networks of the pair on the first ``batch`` Fashion-MNIST test images."""
    if weights not in ("random", "pretrained"):
        raise ValueError(f"weights must be 'random' or 'pretrained', got {weights!r}")
    images, labels = to_tensors(load_dataset("fashion_mnist", "test"), device=device)
    x, y = images[:batch], labels[:batch]
    networks = {}
    for family, name in MODELS.items():
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=weights == "pretrained").to(device).eval()
        networks[family] = {"model": name, **measure(model, x, y, repeats, device)}
    return {
        "name": "transport_vs_smoothgrad",
        "weights": weights,
        "device": device,
        "batch": batch,
        "networks": networks,
        "target": "smoothgrad_over_transport near 50; distances far lower for the OTNN (paper Table 2)",
    }


if __name__ == "__main__":
    result = run(*sys.argv[1:2])
    print(f"{result['batch']} Fashion-MNIST test images, {result['weights']} weights")
    for net in result["networks"].values():
        print_table(f"{net['model']} (accuracy {net['accuracy']:.3f})", net["stats"])
        print(f"  smoothgrad / transport cost  {net['smoothgrad_over_transport']:6.1f}x")
        print(f"  mean ||grad f||              {net['mean_gradient_norm']:.3g}")
        print(f"  L2 between unit-norm maps    {net['unit_l2']:.3g}")
        print(f"  1 - Spearman                 {net['one_minus_spearman']:.3g}")
