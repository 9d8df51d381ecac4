"""What one fixed CPU budget buys a Fashion-MNIST OTNN (issue 18): each convolution, head and loss setting, alike.

Every variant is a shipped small Fashion-MNIST recipe with one change (:data:`VARIANTS`), trained for the same
budget (:data:`BUDGET`: a seeded subset of 12,000 training images, 2 epochs, Adam 3e-3 with a cosine decay, batch 128)
and scored on 2,000 test images: test accuracy; certified accuracy at the recipe's L2 radii (an OTNN's prediction
whose output gap exceeds the radius cannot change within it: the lam trade-off of Sec. 4); the transport-regime
figures of :mod:`otnn_plugin.diagnostics` on the first 256 of them (mean ``||grad f_y||``, 1 at the hKR optimum;
Prop. 2 ratio, 0 there); and the training seconds per epoch, also as a ratio to the unconstrained twin's trained
alike (cross-entropy, its own recipe). Each variant runs with every seed of :data:`SEEDS` (initialisation, subset
and shuffle).

These are budget figures, not converged ones: they rank choices at equal cost, they do not predict a full run's
accuracy (the paper trains 200 epochs on 60,000 images).

Run: ``python -m benchmarks.bench_budget --threads 1`` (about 40 min on one CPU thread); writes
``benchmarks/results/budget.json``, ``budget.md`` and ``budget.png`` (test accuracy against mean ``||grad f_y||``,
the trade-off in one picture). ``--variants NAME...`` runs some only and replaces their rows in ``budget.json`` when
it was measured on the same budget, seeds, CPU and thread count (else nothing is written).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import torch
from matplotlib.figure import Figure

from otnn_plugin._environment import cpu_name
from otnn_plugin._files import atomic_write_text
from otnn_plugin.train import load_recipe, prepare, train
from otnn_plugin.train.scores import test_diagnostics

RESULTS = Path(__file__).resolve().parent / "results"
COMMAND = "python -m benchmarks.bench_budget --threads 1"
BUDGET = {"train_limit": 12_000, "test_limit": 2_000, "epochs": 2, "lr": 3e-3, "schedule": "cosine"}
SEEDS = (0, 1)
OTNN, TWIN = "fashionmnist_small_otnn", "fashionmnist_small_unconstrained"
#: Variant -> (recipe, what changes in it, why it is here). The first OTNN row is the shipped recipe.
VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "twin": (TWIN, {}, "the unconstrained reference"),
    "shipped": (OTNN, {}, "BCOP convolutions, circular padding, Eq. 5 with alpha 0.1, lam 10 (Table 8)"),
    "zero padding": (OTNN, {"model_args": {"padding_mode": "zeros"}}, "BCOP with zero padding (1-Lipschitz, not "
                                                                     "orthogonal at the border)"),
    "SpectralConv2d": (OTNN, {"model_args": {"conv": "spectral"}}, "the paper's deel-torchlip convolutions"),
    "A.2.3 weights": (OTNN, {"loss_args": {"alpha": 0.2, "lam": 5.0}}, "Eq. 5 with A.2.3's alpha 0.2, lam 5"),
    "lam 100": (OTNN, {"loss_args": {"alpha": 0.01, "lam": 100.0}}, "Eq. 5 with the hinge 10x heavier"),
    "temperature 10": (OTNN, {"loss_args": {"alpha": 0.1, "lam": 10.0, "temperature": 10.0}},
                       "Eq. 5's softmax closer to a max over the other classes"),
    "Eq. 4": (OTNN, {"loss": "hkr_multiclass", "loss_args": {"lam": 10.0, "margin": 0.5}},
              "the one-vs-all hinge of Eq. 4, fixed margin 0.5 (Table 8: 72.2%)"),
    "disjoint head": (OTNN, {"model_args": {"head": "disjoint"}}, "head rows of unit norm each, not orthonormal"),
    "disjoint head, lam 100": (OTNN, {"model_args": {"head": "disjoint"}, "loss_args": {"alpha": 0.01, "lam": 100.0}},
                               "both changes above"),
    "shallow": (OTNN, {"model": "otnn_vgg_fashionmnist_shallow"},
                "two conv stages (16, 32) with pooling, a dense 64 and a disjoint head, not Table 7's 11 "
                "convolutions"),
    "shallow, lam 100": (OTNN, {"model": "otnn_vgg_fashionmnist_shallow", "loss_args": {"alpha": 0.1, "lam": 100.0}},
                         "the shallow network, Eq. 5 with the hinge 10x heavier (alpha kept at 0.1)"),
    "shallow, lam 1000": (OTNN, {"model": "otnn_vgg_fashionmnist_shallow", "loss_args": {"alpha": 0.1, "lam": 1000.0}},
                          "the shallow network, the hinge 100x heavier"),
    "shallow, orthogonal head, lam 100": (
        OTNN, {"model": "otnn_vgg_fashionmnist_shallow", "model_args": {"head": "orthogonal"},
               "loss_args": {"alpha": 0.1, "lam": 100.0}}, "the shallow network with the paper's orthogonal head"),
    **{f"gradient-norm preserving, lam {lam:g}": (
        OTNN, {"model": "otnn_vgg_fashionmnist_gnp", "power_iterations": 3, "loss_args": {"alpha": 0.1, "lam": lam}},
        f"space-to-depth, square orthogonal convolutions, narrowing dense layers, disjoint head, Eq. 5 with lam {lam:g}"
    ) for lam in (10.0, 100.0, 1000.0)},
}
#: Plot markers: the small VGG's variants, and those of another network.
MARKERS = {"otnn_vgg_fashionmnist_shallow": "^", "otnn_vgg_fashionmnist_gnp": "s"}


def train_variant(recipe: str, changes: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train ``recipe`` with ``changes`` on the budget; its test accuracy, diagnostics and seconds per epoch."""
    prepared = prepare(load_recipe(recipe, **BUDGET, **changes, seed=seed), device="cpu")
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(prepared, run_dir, progress=False)
        epochs = [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()]
    train_size = len(prepared.train[0])
    seconds = [train_size / line["images_per_second"] for line in epochs if "images_per_second" in line]
    diagnostics = test_diagnostics(prepared)
    return {"accuracy": result.scores["accuracy"], "certified_accuracy": result.scores.get("certified_accuracy"),
            "mean_grad_norm": diagnostics["mean_grad_norm"],
            "prop2_ratio": diagnostics["prop2_ratio"], "epoch_seconds": statistics.median(seconds),
            "margins": epochs[-1].get("margins")}


def run(names: list[str]) -> dict[str, Any]:
    runs = {name: [train_variant(VARIANTS[name][0], VARIANTS[name][1], seed) for seed in SEEDS] for name in names}
    return {"command": COMMAND, "budget": BUDGET, "seeds": list(SEEDS), "threads": torch.get_num_threads(),
            "cpu": cpu_name(), "torch": torch.__version__,
            "variants": {name: {"recipe": VARIANTS[name][0], "changes": VARIANTS[name][1], "why": VARIANTS[name][2],
                                "runs": runs[name]} for name in names}}


def merge(result: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """``result``'s rows in place of the same rows of the study in ``path``, if it was measured alike; else None."""
    if not path.is_file():
        return None
    previous = json.loads(path.read_text())
    alike = ("budget", "seeds", "cpu", "threads")
    if any(previous.get(key) != result[key] for key in alike):
        return None
    variants = {**previous["variants"], **result["variants"]}
    return {**previous, "variants": {name: variants[name] for name in VARIANTS if name in variants}}


def _mean(runs: list[dict], key: str) -> float:
    return statistics.fmean(run[key] for run in runs)


def render_markdown(result: dict[str, Any]) -> str:
    """One row per variant: the mean over the seeds, and each seed's value in brackets."""
    twin = result["variants"].get("twin")
    budget = result["budget"]
    lines = [
        "### What one CPU budget buys: convolutions and losses of the small Fashion-MNIST OTNN",
        "",
        f"`{result['command']}` ({result['threads']} thread(s), {result['cpu']}, torch {result['torch']}): "
        f"{budget['train_limit']} training images, {budget['epochs']} epochs, Adam {budget['lr']:g} with a "
        f"{budget['schedule']} decay, batch 128; {budget['test_limit']} test images; seeds "
        f"{', '.join(map(str, result['seeds']))} (mean, and each seed in brackets). Mean ‖∇f_y‖ and the Prop. 2 "
        "ratio on the first 256 test images (1 and 0 at the hKR optimum). Certified accuracy (OTNNs): the fraction "
        "of test images classified right with an output gap that no L2 perturbation of that radius can close. "
        "Budget figures rank choices at equal cost; they do not predict a converged run. Epoch seconds are timed one "
        "variant after another, not interleaved: on a shared machine they follow its load, and "
        "`python -m benchmarks.bench_train` gives the step-cost ratios.",
        "",
        "| variant | what changes | test accuracy | certified at L2 radius | mean ‖∇f_y‖ | Prop. 2 ratio | "
        "epoch seconds | / twin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, variant in result["variants"].items():
        runs = variant["runs"]

        def cell(key: str, fmt: str) -> str:
            return f"{_mean(runs, key):{fmt}} ({', '.join(f'{run[key]:{fmt}}' for run in runs)})"

        ratio = f"{_mean(runs, 'epoch_seconds') / _mean(twin['runs'], 'epoch_seconds'):.2f}x" if twin else "-"
        radii = runs[0]["certified_accuracy"] or {}
        certified = ", ".join(f"{r}: {statistics.fmean(run['certified_accuracy'][r] for run in runs):.3f}"
                              for r in radii) or "-"
        lines.append(f"| {name} | {variant['why']} | {cell('accuracy', '.3f')} | {certified} | "
                     f"{cell('mean_grad_norm', '.2f')} | {cell('prop2_ratio', '.2f')} | "
                     f"{_mean(runs, 'epoch_seconds'):.0f} | {ratio} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """Test accuracy against mean ``||grad f_y||`` for every OTNN variant (each seed a marker, the mean labelled;
    triangles for the shallow network, squares for the gradient-norm-preserving one), the twin's accuracy as a
    line: up is accuracy, right is the transport regime (1 at the hKR optimum)."""
    figure = Figure(figsize=(8, 5.5))
    axes = figure.add_subplot()
    colours = iter(matplotlib.colormaps["tab20"].colors)
    for index, (name, variant) in enumerate(result["variants"].items()):
        runs = variant["runs"]
        if name == "twin":
            axes.axhline(_mean(runs, "accuracy"), color="grey", linestyle="--", label="unconstrained twin (small VGG)")
            continue
        colour = next(colours)
        marker = MARKERS.get(variant["changes"].get("model"), "o")
        axes.scatter([r["mean_grad_norm"] for r in runs], [r["accuracy"] for r in runs], s=22, color=colour,
                     marker=marker)
        axes.annotate(name.replace("gradient-norm preserving", "GNP"), (_mean(runs, "mean_grad_norm"),
                      _mean(runs, "accuracy")), fontsize=8, color="0.2", xytext=(6, (4, -11, 13)[index % 3]),
                      textcoords="offset points")
    axes.set_xlim(0, 1.25)
    axes.set_xlabel("mean ‖∇f_y‖ on 256 test images (1 at the hKR optimum)")
    axes.set_ylabel("test accuracy")
    budget = result["budget"]
    axes.set_title(f"Fashion-MNIST OTNNs (circles: small VGG, triangles: shallow, squares: GNP): "
                   f"{budget['train_limit']} images, {budget['epochs']} epochs, "
                   f"seeds {', '.join(map(str, result['seeds']))}", fontsize=9)
    axes.legend(loc="lower left", fontsize=8)
    figure.text(0.01, 0.005, result["command"], fontsize=7, color="grey")
    figure.savefig(path, dpi=100, bbox_inches="tight")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_budget", description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                        help="run these only; their rows replace those of budget.json if it was measured alike")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args.variants or list(VARIANTS))
    merged = merge(result, RESULTS / "budget.json") if args.variants else None
    result = merged or result
    markdown = render_markdown(result)
    if not args.variants or merged:
        atomic_write_text(RESULTS / "budget.json", json.dumps(result, indent=1) + "\n")
        atomic_write_text(RESULTS / "budget.md", markdown)
        plot(result, RESULTS / "budget.png")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
