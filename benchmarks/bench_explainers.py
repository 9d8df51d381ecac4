"""Transport (one gradient) against SmoothGrad (50 noisy gradients): cost and distance (paper Sec. 5.1.1, Table 2).

The paper's point: on an OTNN the gradient already is SmoothGrad's explanation, for 1/50 of the cost; on an
unconstrained network the two differ. Each pair of networks explains the first ``batch`` test images of its
dataset: Fashion-MNIST for each image's label, CelebA for the label Mustache (the paper's Table 2 rows).
SmoothGrad is the paper's (N = 50, sigma = 0.2, signed mean) and is compared with the signed gradient:
``1 - Spearman`` on the raw maps, L2 between maps scaled to unit norm (raw L2 would compare the two networks'
gradient scales rather than their maps).

``weights="random"`` uses freshly initialised networks (runs anywhere, says little about trained ones);
``weights="pretrained"`` loads the trained ones (``timm.create_model(..., pretrained=True)``: hub or registry/) and
reports a network without weights as skipped, with the reason.

Run: ``python -m benchmarks.bench_explainers [random|pretrained] [--datasets ...] [--batch N] [--repeats N]``
(data from ``$OTNN_DATA_DIR``).
"""
from __future__ import annotations

import argparse
from typing import Callable

import timm
import torch
from torch import nn
from torch.nn import functional as F

from otnn_plugin.data import label_names, load_dataset, to_tensors
from otnn_plugin.explainers import explain
from otnn_plugin.metrics.distance import explanation_distance

from .timing import compare, print_table, ratio

#: Per dataset: the pair of networks and the label explained (``None``: each image's own class).
PAIRS: dict[str, dict] = {
    "fashion_mnist": {
        "models": {"otnn": "otnn_vgg_fashionmnist_small", "unconstrained": "unconstrained_vgg_fashionmnist_small"},
        "label": None,
    },
    "celeba": {
        "models": {"otnn": "otnn_vgg_celeba_small.subset_109x89",
                   "unconstrained": "unconstrained_vgg_celeba_small.subset_109x89"},
        "label": "Mustache",
    },
}


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
    return {
        "mean_gradient_norm": transport.flatten(1).norm(dim=1).mean().item(),
        "stats": stats,
        "smoothgrad_over_transport": ratio(stats, "smoothgrad", "transport"),
        "unit_l2": unit_l2.mean().item(),
        "one_minus_spearman": explanation_distance(transport, smoothgrad, "spearman").mean().item(),
    }


def _accuracy(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, output: int | None) -> float:
    """Share of right decisions: argmax for classes, ``sign f`` of the explained label for attributes."""
    with torch.no_grad():
        scores = model(x)
    if output is None:
        return (scores.argmax(1) == labels).float().mean().item()
    return ((scores[:, output] > 0) == (labels[:, output] > 0.5)).float().mean().item()


def run_pair(dataset: str, weights: str, device: str, batch: int, repeats: int) -> dict:
    """Both networks of ``dataset``'s pair on its first ``batch`` test images."""
    pair = PAIRS[dataset]
    images, labels = to_tensors(load_dataset(dataset, "test").select(range(batch)), device=device)
    output = None if pair["label"] is None else label_names(dataset).index(pair["label"])
    targets = labels if output is None else torch.full((batch,), output, device=device)
    networks = {}
    for family, name in pair["models"].items():
        torch.manual_seed(0)
        try:
            model = timm.create_model(name, pretrained=weights == "pretrained").to(device).eval()
        except FileNotFoundError as err:
            networks[family] = {"model": name, "skipped": str(err)}
            continue
        networks[family] = {"model": name, "accuracy": _accuracy(model, images, labels, output),
                            **measure(model, images, targets, repeats, device)}
    return {"dataset": dataset, "explained": pair["label"] or "each image's class", "networks": networks}


def run(weights: str = "random", device: str = "cpu", batch: int = 32, repeats: int = 3,
        datasets: tuple[str, ...] = tuple(PAIRS)) -> dict:
    """Every pair of ``datasets`` (see :data:`PAIRS`)."""
    if weights not in ("random", "pretrained"):
        raise ValueError(f"weights must be 'random' or 'pretrained', got {weights!r}")
    unknown = sorted(set(datasets) - set(PAIRS))
    if unknown:
        raise ValueError(f"no pair for {', '.join(unknown)}; choose from {', '.join(PAIRS)}")
    return {
        "name": "transport_vs_smoothgrad",
        "weights": weights,
        "device": device,
        "batch": batch,
        "pairs": [run_pair(dataset, weights, device, batch, repeats) for dataset in datasets],
        "target": "smoothgrad_over_transport near 50; distances far lower for the OTNN (paper Table 2)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="?", default="random", choices=("random", "pretrained"))
    parser.add_argument("--datasets", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    result = run(args.weights, args.device, args.batch, args.repeats, tuple(args.datasets))
    for pair in result["pairs"]:
        print(f"\n{result['batch']} {pair['dataset']} test images, {result['weights']} weights, "
              f"explaining {pair['explained']}")
        for net in pair["networks"].values():
            if "skipped" in net:
                print(f"\n{net['model']}: skipped ({net['skipped']})")
                continue
            print_table(f"{net['model']} (accuracy {net['accuracy']:.3f})", net["stats"])
            print(f"  smoothgrad / transport cost  {net['smoothgrad_over_transport']:6.1f}x")
            print(f"  mean ||grad f||              {net['mean_gradient_norm']:.3g}")
            print(f"  L2 between unit-norm maps    {net['unit_l2']:.3g}")
            print(f"  1 - Spearman                 {net['one_minus_spearman']:.3g}")


if __name__ == "__main__":
    main()
