"""PNG figures of a leaderboard: every explainer on the same inputs for every model (as the paper's Fig. 3), and
one bar chart per metric. Figures are drawn with matplotlib's object API (no pyplot state) and returned as bytes."""
from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from .leaderboard import MetricEntry, Setting

__all__ = ["explanation_figure", "metric_bars"]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _image(inputs: np.ndarray) -> tuple[np.ndarray, str | None]:
    """A ``(C, H, W)`` input in [0, 1] as something ``imshow`` draws, with its colour map."""
    if inputs.shape[0] == 1:
        return inputs[0], "gray"
    return np.clip(inputs.transpose(1, 2, 0), 0, 1), None


def explanation_figure(setting: Setting, examples: dict[str, np.ndarray]) -> bytes | None:
    """Rows: each model x each example input; columns: the input, then each explainer's channel-mean map.

    Signed maps use a diverging colour map centred on 0, non-negative ones a sequential map from 0; every map is
    scaled on its own. ``None`` when the examples hold no explanation.
    """
    models = [m for m in setting.models if any(k.startswith(m + "/") for k in examples)]
    explainers = list(setting.explainers)
    if not models or "inputs" not in examples:
        return None
    inputs, indices, targets = examples["inputs"], examples["indices"], examples["targets"]
    rows, cols = len(models) * len(inputs), 1 + len(explainers)
    figure = Figure(figsize=(1.35 * cols, 1.45 * rows), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    for m, model in enumerate(models):
        for i in range(len(inputs)):
            row = axes[m * len(inputs) + i]
            image, cmap = _image(inputs[i])
            row[0].imshow(image, cmap=cmap, vmin=0, vmax=1)
            row[0].set_ylabel(f"{model}\n#{indices[i]} {setting.target_names[targets[i]]}", fontsize=7)
            for j, explainer in enumerate(explainers, start=1):
                attribution = examples.get(f"{model}/{explainer}")
                if attribution is not None:
                    a = attribution[i]
                    if a.min() < 0:
                        bound = float(np.abs(a).max()) or 1.0
                        row[j].imshow(a, cmap="RdBu_r", vmin=-bound, vmax=bound)
                    else:
                        row[j].imshow(a, cmap="inferno", vmin=0, vmax=float(a.max()) or 1.0)
    for j, title in enumerate(["input", *explainers]):
        axes[0, j].set_title(title, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"{setting.name}: explanations of the same inputs (red > 0 > blue; dark = 0)", fontsize=9)
    return _png(figure)


def metric_bars(setting: Setting, metric: MetricEntry) -> bytes | None:
    """Mean ± standard error of one metric: explainers along the x axis, one bar per model; ``None`` if no score."""
    cells = [c for c in setting.cells if c.metric == metric.label]
    explainers = [e for e in setting.explainers if any(c.explainer == e for c in cells)]
    models = list(setting.models)
    if not any(c.mean is not None for c in cells):
        return None
    figure = Figure(figsize=(max(4.0, 0.6 * len(explainers) * len(models)), 3.0), layout="constrained")
    axis = figure.subplots()
    width = 0.8 / len(models)
    positions = np.arange(len(explainers))
    for k, model in enumerate(models):
        by_explainer = {c.explainer: c for c in cells if c.model == model}
        means = [by_explainer[e].mean if by_explainer[e].mean is not None else np.nan for e in explainers]
        errors = [by_explainer[e].se or 0.0 for e in explainers]
        axis.bar(positions + (k - (len(models) - 1) / 2) * width, means, width, yerr=errors, capsize=2, label=model)
    axis.set_xticks(positions, explainers, rotation=30, ha="right", fontsize=8)
    axis.axhline(0, color="black", linewidth=0.5)
    axis.legend(fontsize=7)
    arrow = "↑" if metric.direction == "higher" else "↓"
    axis.set_title(f"{setting.name}: {metric.label} ({metric.direction} is better {arrow})", fontsize=9)
    return _png(figure)
