"""The Koch snowflake demo (paper Sec. 3, Prop. 2, Fig. 2): one transport step lands an OTNN's points on its boundary.

An OTNN trained with the hKR loss (Eq. 1) has ``||grad f|| = 1`` almost everywhere, so
``x' = x - f(x) grad f(x)`` (``t = 1``) lies on the decision boundary ``f = 0`` (Prop. 2). An unconstrained twin
separates the same points, but its gradient norm is not 1, and the same step misses the boundary.

    models = snowflake_models(pretrained=True, device="cpu")
    points, labels = to_tensors(load_dataset("snowflake", "test"))
    reports = {name: boundary_report(model, points) for name, model in models.items()}
    save_png(snowflake_figure(models, points, labels, reports), "snowflake.png")
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass

import timm
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..explainers import TransportCounterfactual
from ..lipschitz import explaining
from ..devices import resolve_device
from ..train import load_recipe, prepare, train

__all__ = ["SNOWFLAKE_RECIPES", "BoundaryReport", "boundary_report", "snowflake_models", "snowflake_figure"]

#: The recipes of the Fig. 2 pair, OTNN first.
SNOWFLAKE_RECIPES = ("snowflake_otnn", "snowflake_unconstrained")


@dataclass(frozen=True)
class BoundaryReport:
    """How close ``x' = x - t f(x) grad f(x)`` lands to the boundary ``f = 0``, over a set of points.

    ``ratios`` holds ``|f(x')| / |f(x)|`` per point: 0 on the boundary, 1 for no progress, above 1 for a step
    that overshoots further than it started. ``counterfactuals`` are the moved points ``x'``.
    """

    t: float
    tolerance: float
    ratios: Tensor
    gradient_norms: Tensor
    counterfactuals: Tensor

    @property
    def median_ratio(self) -> float:
        return self.ratios.median().item()

    @property
    def within_tolerance(self) -> float:
        """Fraction of the points with ``|f(x')| <= tolerance * |f(x)|``."""
        return (self.ratios <= self.tolerance).float().mean().item()

    @property
    def mean_gradient_norm(self) -> float:
        return self.gradient_norms.mean().item()


def boundary_report(model: nn.Module, points: Tensor, t: float = 1.0, tolerance: float = 0.05) -> BoundaryReport:
    """Move every point with ``counterfactual(t=t)`` and measure how close it lands to ``f = 0`` (Prop. 2).

    ``points`` ``(N, 2)`` must be on the model's device.
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance is a fraction of |f(x)| and must lie in (0, 1), got {tolerance}")
    explainer = TransportCounterfactual(model)
    moved = explainer.counterfactual(points, t=t, return_scores=True)
    gradient_norms = explainer.attribute(points).flatten(1).norm(dim=1)
    ratios = moved.counterfactual_scores.abs() / moved.scores.abs().clamp_min(torch.finfo(points.dtype).tiny)
    return BoundaryReport(t, tolerance, ratios, gradient_norms, moved.inputs)


def snowflake_models(
    pretrained: bool = False, epochs: int | None = None, device: str = "auto", progress: bool = True
) -> dict[str, nn.Module]:
    """The Fig. 2 pair by timm name, in eval mode on ``device``: registry weights, or trained with the shipped recipes.

    Training uses :data:`SNOWFLAKE_RECIPES` (hKR Eq. 1 for the OTNN, cross-entropy for the twin); ``epochs``
    overrides the recipes' 60. The run folders are temporary: ``otnn train --recipe ... --registry`` keeps one.
    """
    if pretrained and epochs is not None:
        raise ValueError("epochs sets a training run, pretrained loads registry weights: give one of them")
    models = {}
    for recipe_name in SNOWFLAKE_RECIPES:
        recipe = load_recipe(recipe_name, epochs=epochs)
        if pretrained:
            models[recipe.model] = timm.create_model(recipe.model, pretrained=True).to(resolve_device(device)).eval()
            continue
        prepared = prepare(recipe, device=device)
        with tempfile.TemporaryDirectory(prefix=f"{recipe.name}.") as run_dir:
            train(prepared, run_dir, progress=progress)
        models[recipe.model] = prepared.model.eval()
    return models


@torch.no_grad()
def _grid_scores(
    model: nn.Module, limits: tuple[float, float, float, float], resolution: int, device: torch.device
) -> Tensor:
    """``f`` on a ``resolution x resolution`` grid spanning ``limits = (x0, x1, y0, y1)``, one forward pass."""
    xs = torch.linspace(limits[0], limits[1], resolution, device=device)
    ys = torch.linspace(limits[2], limits[3], resolution, device=device)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    with explaining(model):
        return model(grid.reshape(-1, 2)).reshape(resolution, resolution).cpu()


def snowflake_figure(
    models: dict[str, nn.Module], points: Tensor, labels: Tensor, reports: dict[str, BoundaryReport],
    segments: int = 200, resolution: int = 300, seed: int = 0,
) -> Figure:
    """Paper Fig. 2, one panel per model: level sets of ``f``, the boundary ``f = 0`` (red dashes), and segments
    ``x -> x'`` for ``segments`` points drawn at random (blue: inner snowflake, orange: outer); every point of
    ``points`` is a small black dot.

    Every panel shows the same square around the data; segments that leave it are clipped.
    """
    if set(reports) != set(models):
        raise ValueError(f"give one report per model: models {sorted(models)}, reports {sorted(reports)}")
    steps = {report.t for report in reports.values()}
    if len(steps) != 1:
        raise ValueError(f"the reports were made with different t ({sorted(steps)}): make them with one t")
    (t,) = steps
    half_width = 1.25 * points.abs().max().item()
    limits = (-half_width, half_width, -half_width, half_width)
    chosen = torch.randperm(len(points), generator=torch.Generator().manual_seed(seed))[:segments]
    start, classes = points[chosen].cpu(), labels[chosen].cpu() > 0
    figure = Figure(figsize=(4.8 * len(models), 5.2), layout="constrained")
    for ax, (name, model) in zip(figure.subplots(1, len(models), squeeze=False)[0], models.items()):
        report = reports[name]
        scores = _grid_scores(model, limits, resolution, points.device)
        bound = scores.abs().max().item()
        levels = torch.linspace(-bound, bound, 21).tolist()
        filled = ax.contourf(scores.numpy(), levels=levels, extent=limits, cmap="Greys", alpha=0.6)
        ax.contour(scores.numpy(), levels=[0.0], extent=limits, colors="red", linestyles="--", linewidths=1.5)
        figure.colorbar(filled, ax=ax, shrink=0.8, label="f(x)")
        end = report.counterfactuals[chosen].cpu()
        every = points.cpu()
        ax.scatter(every[:, 0].numpy(), every[:, 1].numpy(), s=0.3, color="black", linewidths=0)
        for mask, colour in ((classes, "tab:blue"), (~classes, "tab:orange")):
            ax.add_collection(LineCollection(torch.stack([start[mask], end[mask]], dim=1).numpy(), colors=colour,
                                             linewidths=0.7))
            ax.scatter(start[mask, 0].numpy(), start[mask, 1].numpy(), s=4, color=colour, zorder=3)
            ax.scatter(end[mask, 0].numpy(), end[mask, 1].numpy(), s=4, color="white", edgecolors=colour,
                       linewidths=0.5, zorder=3)
        ax.set_xlim(limits[:2])
        ax.set_ylim(limits[2:])
        ax.set_aspect("equal")
        ax.set_title(
            f"{name}\nmedian |f(x')|/|f(x)| = {report.median_ratio:.3g}, "
            f"{100 * report.within_tolerance:.1f}% within {report.tolerance:g}\n"
            f"mean ||grad f|| = {report.mean_gradient_norm:.3g}",
            fontsize=9,
        )
    figure.suptitle(f"x' = x - t f(x) grad f(x) with t = {t:g} (paper Fig. 2); boundary f = 0 dashed, x' hollow",
                    fontsize=10)
    return figure
