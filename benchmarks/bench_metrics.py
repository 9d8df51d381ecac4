"""Our batched-torch metrics against the closest Quantus metric on the same inputs and model (issue 8).

Deletion vs ``quantus.PixelFlipping`` (the same curve: 28 steps of 28 pixels) and MuFidelity with pixel cells and
Pearson vs ``quantus.FaithfulnessCorrelation`` (the same estimator: 30 subsets of 20 % of the pixels), on an exported
``otnn_vgg_fashionmnist_small`` and 32 random 28x28 images. Forwards dominate on a CPU (expect about 1.4x); on a GPU
Quantus's per-step numpy round trips dominate (aim: 10x or more).

Run: ``python -m benchmarks.bench_metrics``.
"""
from __future__ import annotations

import numpy as np
import quantus
import timm
import torch

import otnn_plugin
from otnn_plugin.metrics import Deletion, MuFidelity

from .timing import compare, print_table, ratio


def _saliency(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x)
    return grad.abs().cpu().numpy()


def run(device: str = "cpu", batch: int = 32, repeats: int = 5) -> dict:
    model = otnn_plugin.export_vanilla(timm.create_model("otnn_vgg_fashionmnist_small")).to(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, 28, 28, generator=generator).to(device)
    y = torch.randint(0, 10, (batch,), generator=generator).to(device)
    a = _saliency(model, x, y)
    x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
    call = dict(model=model, x_batch=x_np, y_batch=y_np, a_batch=a, softmax=False, device=device, batch_size=batch)
    subset_size, runs = round(0.2 * 28 * 28), 30

    candidates = {
        "deletion_ours": lambda: Deletion(steps=28, baseline=0.0)(**call),
        "pixel_flipping_quantus": lambda: quantus.PixelFlipping(
            features_in_step=28, perturb_baseline=0.0, normalise=False, disable_warnings=True)(**call),
        "mufidelity_ours": lambda: MuFidelity(
            grid_size=None, subset_percent=subset_size / 784, nb_samples=runs, correlation="pearson")(**call),
        "faithfulness_correlation_quantus": lambda: quantus.FaithfulnessCorrelation(
            nr_runs=runs, subset_size=subset_size, perturb_baseline=0.0, return_aggregate=False,
            disable_warnings=True)(**call),
    }
    stats = compare(candidates, repeats=repeats, warmup=1, device=device)
    return {
        "name": "metrics_vs_quantus",
        "device": device,
        "batch": batch,
        "stats": stats,
        "ratios": {
            "pixel_flipping_over_deletion": ratio(stats, "pixel_flipping_quantus", "deletion_ours"),
            "faithfulness_correlation_over_mufidelity": ratio(stats, "faithfulness_correlation_quantus",
                                                              "mufidelity_ours"),
        },
        "target": "about 1.4x on a CPU, 10x or more on a GPU",
    }


if __name__ == "__main__":
    result = run("cuda" if torch.cuda.is_available() else "cpu")
    print_table(f"Metrics on {result['batch']} Fashion-MNIST-sized images ({result['device']})", result["stats"])
    for key, value in result["ratios"].items():
        print(f"  {key:<44} {value:6.2f}x")
