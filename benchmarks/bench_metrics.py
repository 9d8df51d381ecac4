"""Our batched-torch metrics against the closest Quantus metric on the same inputs and model (issue 8).

Deletion vs ``quantus.PixelFlipping`` (the same curve: 28 steps of 28 pixels) and MuFidelity with pixel cells and
Pearson vs ``quantus.FaithfulnessCorrelation`` (the same estimator: 30 subsets of 20 % of the pixels), on an exported
``otnn_vgg_fashionmnist_small`` and ``batch`` random 28x28 images. Both sides forward the same number of perturbed
images; Quantus forwards them ``batch`` at a time, ours ``batch_size`` at a time (256 by default). The
``*_chunk<batch>`` candidates forward ours in chunks of ``batch`` too, so that the two sides run the very same
convolutions and the ratio measures what the metrics add around them. On a CPU the forwards are most of both
costs; on a GPU Quantus's per-step numpy round trips dominate (aim: 10x or more).

The ``seven_explainers`` case times what a paper evaluation does per batch and model: µFidelity with the paper
configs' settings (``evaluations/fashionmnist.yaml``: a 20x20 grid, subsets of 20 % of its cells, 200 subsets, zero
baseline, Spearman) for the attributions of all 7 explainers within one :func:`shared_forwards` block, as the
runner calls it, against ``quantus.FaithfulnessCorrelation`` called once per explainer with 200 subsets of 20 % of
the pixels (157 of 784) and a black baseline. Both see the same images, model and attributions; ours forwards the
200 perturbed copies of each image once for all explainers (the subsets do not depend on the explanation), Quantus
forwards them for each explainer. What differs besides: ours removes grid cells (1-2 pixels each at 28x28), Quantus
single pixels; ours correlates by rank, Quantus by Pearson; Quantus draws its subsets with numpy, ours with torch.

Run: ``python -m benchmarks.bench_metrics``.
"""
from __future__ import annotations

import numpy as np
import quantus
import timm
import torch

import otnn_plugin
from otnn_plugin.data import load_dataset, to_tensors
from otnn_plugin.explainers import explain
from otnn_plugin.metrics import Deletion, MuFidelity
from otnn_plugin.metrics.perturbation import shared_forwards

from .report import print_result
from .schema import target
from .timing import compare, ratio_summary

COMMAND = "python -m benchmarks.bench_metrics"
SIZES = {"full": {"batch": 32, "repeats": 5}, "quick": {"batch": 2, "repeats": 2}}
STEPS, RUNS = 28, 30
#: The paper's explainers with their defaults (RISE with 64 masks: the metrics' cost does not depend on the maps).
EXPLAINERS = {"transport": {}, "saliency": {}, "gradient_x_input": {}, "smoothgrad": {}, "integrated_gradients": {},
              "gradcam": {}, "rise": {"n_masks": 64}}
SEVEN = {"full": {"batch": 16, "repeats": 3, "subsets": 200}, "quick": {"batch": 2, "repeats": 2, "subsets": 10}}


def _saliency(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x)
    return grad.abs().cpu().numpy()


def run(quick: bool = False, device: str = "cpu") -> dict:
    size = SIZES["quick" if quick else "full"]
    batch = size["batch"]
    torch.manual_seed(0)
    model = otnn_plugin.export_vanilla(timm.create_model("otnn_vgg_fashionmnist_small")).to(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, 28, 28, generator=generator).to(device)
    y = torch.randint(0, 10, (batch,), generator=generator).to(device)
    a = _saliency(model, x, y)
    call = dict(model=model, x_batch=x.cpu().numpy(), y_batch=y.cpu().numpy(), a_batch=a, softmax=False,
                device=device, batch_size=batch)
    subset_size = round(0.2 * 28 * 28)

    def deletion(**options):
        return lambda: Deletion(steps=STEPS, baseline=0.0, **options)(**call)

    def mufidelity(**options):
        return lambda: MuFidelity(grid_size=None, subset_percent=subset_size / 784, nb_samples=RUNS,
                                  correlation="pearson", **options)(**call)

    chunk = f"chunk{batch}"
    candidates = {
        "deletion_ours": deletion(),
        f"deletion_ours_{chunk}": deletion(batch_size=batch),
        "pixel_flipping_quantus": lambda: quantus.PixelFlipping(
            features_in_step=28, perturb_baseline=0.0, normalise=False, disable_warnings=True)(**call),
        "mufidelity_ours": mufidelity(),
        f"mufidelity_ours_{chunk}": mufidelity(batch_size=batch),
        "faithfulness_correlation_quantus": lambda: quantus.FaithfulnessCorrelation(
            nr_runs=RUNS, subset_size=subset_size, perturb_baseline=0.0, return_aggregate=False,
            disable_warnings=True)(**call),
    }
    stats = compare(candidates, repeats=size["repeats"], warmup=1, device=device)
    ratios = {
        "pixel_flipping_over_deletion": ratio_summary(stats, "pixel_flipping_quantus", "deletion_ours"),
        f"pixel_flipping_over_deletion_{chunk}": ratio_summary(stats, "pixel_flipping_quantus",
                                                               f"deletion_ours_{chunk}"),
        "faithfulness_correlation_over_mufidelity": ratio_summary(stats, "faithfulness_correlation_quantus",
                                                                  "mufidelity_ours"),
        f"faithfulness_correlation_over_mufidelity_{chunk}": ratio_summary(
            stats, "faithfulness_correlation_quantus", f"mufidelity_ours_{chunk}"),
    }
    images = f"{batch} images, exported `otnn_vgg_fashionmnist_small`"
    seven = SEVEN["quick" if quick else "full"]
    return {
        "name": "metrics_vs_quantus",
        "command": COMMAND,
        "params": {"batch": batch, "device": device, "repeats": size["repeats"], "steps": STEPS, "runs": RUNS,
                   "seven_explainers": seven},
        "cases": {"fashionmnist": {"stats": stats, "ratios": ratios},
                  "seven_explainers": _seven_explainers(device, **seven)},
        "targets": [
            target("seven_explainers", "faithfulness_correlation_over_mufidelity_shared",
                   f"Quantus FaithfulnessCorrelation once per explainer / our MuFidelity for all 7 in one "
                   f"`shared_forwards()` block, {seven['subsets']} subsets, {seven['batch']} test images, trained "
                   "exported `otnn_vgg_fashionmnist_small`", "7 explainers", ">=", 4.0),
            target("fashionmnist", "pixel_flipping_over_deletion", f"Quantus PixelFlipping / our Deletion, {images}",
                   "Quantus", ">=", 1.4),
            target("fashionmnist", f"pixel_flipping_over_deletion_{chunk}",
                   f"the same, ours forwarding {batch} images at a time as Quantus does"),
            target("fashionmnist", "faithfulness_correlation_over_mufidelity",
                   f"Quantus FaithfulnessCorrelation / our MuFidelity, {images}", "Quantus", ">=", 1.4),
            target("fashionmnist", f"faithfulness_correlation_over_mufidelity_{chunk}",
                   f"the same, ours forwarding {batch} images at a time as Quantus does"),
        ],
    }


def _seven_explainers(device: str, batch: int, repeats: int, subsets: int) -> dict:
    """Both sides of the ``seven_explainers`` case (see the module docstring), timed interleaved, on the first
    ``batch`` test images and the trained OTNN (Quantus refuses the all-zero Grad-CAM maps of random weights)."""
    model = otnn_plugin.export_vanilla(timm.create_model("otnn_vgg_fashionmnist_small", pretrained=True))
    model = model.to(device).eval()
    x, y = to_tensors(load_dataset("fashion_mnist", "test").select(range(batch)), device=device)
    maps = [explain(model, x, y, method, **settings) for method, settings in EXPLAINERS.items()]
    call = dict(model=model, x_batch=x.cpu().numpy(), y_batch=y.cpu().numpy(), softmax=False, device=device,
                batch_size=batch)

    def ours() -> None:
        with shared_forwards():
            for a in maps:
                MuFidelity(grid_size=20, subset_percent=0.2, nb_samples=subsets, baseline="zero")(a_batch=a, **call)

    def theirs() -> None:
        for a in maps:
            quantus.FaithfulnessCorrelation(nr_runs=subsets, subset_size=round(0.2 * 28 * 28), perturb_baseline="black",
                                            normalise=False, return_aggregate=False, disable_warnings=True)(
                a_batch=a, **call)

    stats = compare({"mufidelity_ours_7_shared": ours, "faithfulness_correlation_quantus_7": theirs},
                    repeats=repeats, warmup=1, device=device)
    return {"stats": stats, "ratios": {"faithfulness_correlation_over_mufidelity_shared": ratio_summary(
        stats, "faithfulness_correlation_quantus_7", "mufidelity_ours_7_shared")}}


if __name__ == "__main__":
    print_result(run(device="cuda" if torch.cuda.is_available() else "cpu"))
