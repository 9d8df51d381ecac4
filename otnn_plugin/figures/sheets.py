"""Counterfactual sheets: gradients and transport counterfactuals ``x' = x - t f(x) grad f(x)`` of image models.

* Classes (Fashion-MNIST, paper Fig. 1 and 5): for each source image and each class ``k``, the targeted gradient
  ``grad f_k(x)`` and the counterfactual ``x - t f_k(x) grad f_k(x)``. For ``k`` other than the source's class
  ``f_k(x) < 0``, so the move goes towards class ``k``; for its own class it goes out of it.
* Attributes (CelebA, paper Fig. 4): for each attribute, source images without it then with it; for each,
  the gradient averaged over the colour channels and the counterfactual, which adds or removes the attribute.

The paper uses ``t = 10`` (Fig. 1, 5, 7, 8) and ``t`` in 5..20 for CelebA (Fig. 9-12): ``t > 1`` crosses the
boundary instead of stopping on it. Gradients are red where negative, green where positive, each map scaled to its
own largest value; counterfactual images are clipped to [0, 1] for display. Give an OTNN and its unconstrained
twin to see them side by side (paper Sec. 3: the OTNN moves along a transport plan, the twin moves by noise).

    models = {"OTNN": timm.create_model("otnn_vgg_fashionmnist_small", pretrained=True)}
    save_png(counterfactual_sheet(models, "fashion_mnist", samples=3), "sheet.png")
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..data import label_names, load_dataset, to_tensors
from ..explainers import TransportCounterfactual
from ..explainers.transport import Step
from ._images import show_image, show_signed

__all__ = ["PAPER_ATTRIBUTES", "Transport", "transport", "class_sheet", "attribute_sheet", "counterfactual_sheet"]

#: The CelebA attributes of paper Fig. 4.
PAPER_ATTRIBUTES = ("Mustache", "Wearing_Hat", "Mouth_Slightly_Open")


class Transport(NamedTuple):
    """What one model does to a batch: ``grad f``, the counterfactuals, and ``f`` before and after the move."""

    gradients: Tensor
    counterfactuals: Tensor
    scores: Tensor
    counterfactual_scores: Tensor


def transport(model: nn.Module, inputs: Tensor, target: Tensor, t: float, step: Step = "gradient") -> Transport:
    """Gradients and counterfactuals of ``model`` for one target output per input (paper Prop. 1 and 2)."""
    explainer = TransportCounterfactual(model)
    moved = explainer.counterfactual(inputs, target, t=t, step=step, return_scores=True)
    return Transport(explainer.attribute(inputs, target), moved.inputs, moved.scores, moved.counterfactual_scores)


def _model_name(model: nn.Module) -> str:
    """The timm name a model was built as, tag included (``otnn_vgg_celeba_small.subset_109x89``)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("architecture", type(model).__name__)
    return f"{name}.{cfg['tag']}" if cfg.get("tag") else name


def _title(models: dict[str, nn.Module], t: float, step: Step) -> str:
    rule = "x' = x - t f(x) grad f(x)" if step == "gradient" else "x' = x - t f(x) grad f(x) / ||grad f(x)||^2"
    names = "".join(f"{' '.join(label.split())}: {_model_name(model)}\n" for label, model in models.items())
    return f"{names}{rule}, t = {t:g}\ngradient: red < 0 < green; under each x': f before -> after"


def _check_models(models: dict[str, nn.Module]) -> None:
    if not models:
        raise ValueError("give at least one model to explain")


def class_sheet(
    models: dict[str, nn.Module], images: Tensor, class_names: Sequence[str], t: float = 10.0,
    step: Step = "gradient",
) -> Figure:
    """Targeted gradients and counterfactuals towards every class (paper Fig. 1 and 5), one row pair per model.

    ``images`` are the sources ``(N, C, H, W)``; every model must return one score per class of ``class_names``.
    """
    _check_models(models)
    n_images, n_classes = len(images), len(class_names)
    targets = torch.arange(n_classes).repeat(n_images)
    rows_per_image = 2 * len(models)
    figure = Figure(figsize=(0.95 * (n_classes + 1), 1.05 * rows_per_image * n_images + 0.6), layout="constrained")
    axes = figure.subplots(rows_per_image * n_images, n_classes + 1, squeeze=False)
    for block, (label, model) in enumerate(models.items()):
        device = next(model.parameters()).device
        moved = transport(model, images.to(device).repeat_interleave(n_classes, 0), targets.to(device), t, step)
        shape = (n_images, n_classes, *images.shape[1:])
        gradients, counterfactuals = moved.gradients.view(shape), moved.counterfactuals.view(shape)
        before = moved.scores.view(n_images, n_classes)
        after = moved.counterfactual_scores.view(n_images, n_classes)
        for i in range(n_images):
            first_row = i * rows_per_image + 2 * block
            gradient_row, counterfactual_row = axes[first_row], axes[first_row + 1]
            for k in range(n_classes):
                show_signed(gradient_row[k + 1], gradients[i, k])
                show_image(counterfactual_row[k + 1], counterfactuals[i, k])
                counterfactual_row[k + 1].set_xlabel(f"{before[i, k]:.2f} -> {after[i, k]:.2f}", fontsize=6)
                if i == 0 and block == 0:
                    gradient_row[k + 1].set_title(f"to {class_names[k]}", fontsize=7)
            gradient_row[1].set_ylabel(f"{label}\ngrad f_k", fontsize=7)
            counterfactual_row[1].set_ylabel(f"{label}\nx'", fontsize=7)
            for row in (gradient_row, counterfactual_row):
                row[0].set_axis_off()
    for i in range(n_images):
        show_image(axes[i * rows_per_image, 0], images[i])
        axes[i * rows_per_image, 0].set_title("source", fontsize=7)
    figure.suptitle(_title(models, t, step), fontsize=8)
    return figure


def attribute_sheet(
    models: dict[str, nn.Module], images: Tensor, targets: Tensor, attribute_labels: Sequence[str],
    t: float = 10.0, step: Step = "gradient",
) -> Figure:
    """Source, gradient and counterfactual triplets (paper Fig. 4): one row per attribute and model.

    ``images`` is ``(A, M, C, H, W)``: ``M`` sources for each of ``A`` attributes; ``targets`` ``(A,)`` holds each
    attribute's output index and ``attribute_labels`` the ``A`` row titles.
    """
    _check_models(models)
    n_attributes, n_images = images.shape[:2]
    if targets.shape != (n_attributes,) or len(attribute_labels) != n_attributes:
        raise ValueError(f"give one target and one label per attribute ({n_attributes}), got targets of shape "
                         f"{tuple(targets.shape)} and {len(attribute_labels)} labels")
    height, width = images.shape[-2:]
    cell = 1.1
    figure = Figure(figsize=(3 * n_images * cell * width / height, cell * n_attributes * len(models) + 0.5),
                    layout="constrained")
    axes = figure.subplots(n_attributes * len(models), 3 * n_images, squeeze=False)
    flat_targets = targets.repeat_interleave(n_images)
    for block, (label, model) in enumerate(models.items()):
        device = next(model.parameters()).device
        moved = transport(model, images.flatten(0, 1).to(device), flat_targets.to(device), t, step)
        for a in range(n_attributes):
            row = axes[a * len(models) + block]
            for m in range(n_images):
                index = a * n_images + m
                show_image(row[3 * m], images[a, m])
                show_signed(row[3 * m + 1], moved.gradients[index])
                show_image(row[3 * m + 2], moved.counterfactuals[index])
                row[3 * m + 2].set_xlabel(
                    f"{moved.scores[index]:.2f} -> {moved.counterfactual_scores[index]:.2f}", fontsize=6
                )
            row[0].set_ylabel(f"{label}\n{attribute_labels[a]}", fontsize=7)
    for m in range(n_images):
        for column, name in enumerate(("source", "grad f", "x'")):
            axes[0, 3 * m + column].set_title(name, fontsize=7)
    figure.suptitle(_title(models, t, step), fontsize=8)
    return figure


def _check_fit(
    models: dict[str, nn.Module], dataset: str, image_shape: tuple[int, ...], names: tuple[str, ...]
) -> None:
    """Every model must take the dataset's images and return one score per dataset label, in the same order."""
    for model in models.values():
        cfg, name = getattr(model, "pretrained_cfg", None) or {}, _model_name(model)
        if not cfg.get("label_names"):
            raise ValueError(f"model {name} has no timm pretrained_cfg with label_names: use a model of this plugin "
                             "(timm.list_models('otnn_*'))")
        expected = tuple(cfg["input_size"])
        if expected != image_shape:
            raise ValueError(f"model {name} takes inputs {'x'.join(map(str, expected))} but {dataset} images are "
                             f"{'x'.join(map(str, image_shape))}: pick a model trained on {dataset}")
        if tuple(cfg["label_names"]) != names:
            raise ValueError(f"model {name} predicts {', '.join(cfg['label_names'])}, not the {dataset} labels "
                             f"{', '.join(names)}: pick a model trained on {dataset}")


def _draw(candidates: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` indices drawn without replacement from the index tensor ``candidates``."""
    return candidates[torch.randperm(len(candidates), generator=generator)[:count]]


def counterfactual_sheet(
    models: dict[str, nn.Module], dataset: str, *, attributes: Sequence[str] | None = None, samples: int = 3,
    t: float = 10.0, step: Step = "gradient", seed: int = 0, data_dir: str | None = None,
) -> Figure:
    """The sheet of test images of ``dataset``: :func:`class_sheet` for classes, :func:`attribute_sheet` for labels.

    Classes: ``samples`` source images of distinct classes, drawn with ``seed``. Attributes (default
    :data:`PAPER_ATTRIBUTES`): ``samples`` images per attribute, the first half without it, the rest with it.
    """
    _check_models(models)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    test = load_dataset(dataset, "test", data_dir)
    if "image" not in test.column_names:
        raise ValueError(f"{dataset} holds no images: counterfactual sheets are for fashion_mnist and celeba "
                         "(the snowflake demo is `otnn snowflake`)")
    names = label_names(dataset)
    generator = torch.Generator().manual_seed(seed)
    if "label" in test.column_names:
        if attributes is not None:
            raise ValueError(f"{dataset} has classes, not attributes: leave attributes out (every class is a target)")
        if samples > len(names):
            raise ValueError(f"samples={samples}: {dataset} has {len(names)} classes, one source image per class")
        classes = test.select_columns(["label"]).with_format("torch")[:]["label"]
        chosen = _draw(torch.arange(len(names)), samples, generator)
        rows = torch.stack([_draw((classes == c).nonzero()[:, 0], 1, generator)[0] for c in chosen.tolist()])
        images, _ = to_tensors(test.select(rows.tolist()))
        _check_fit(models, dataset, tuple(images.shape[1:]), names)
        return class_sheet(models, images, names, t, step)
    attributes = tuple(PAPER_ATTRIBUTES if attributes is None else attributes)
    unknown = [a for a in attributes if a not in names]
    if unknown or not attributes:
        raise ValueError(f"unknown attribute(s) {', '.join(unknown) or '(none given)'}; the models predict: "
                         f"{', '.join(names)}")
    negatives = samples // 2
    rows, row_labels = [], []
    for name in attributes:
        column = test.select_columns([name]).with_format("torch")[:][name]
        picked = [_draw((column == value).nonzero()[:, 0], count, generator)
                  for value, count in ((False, negatives), (True, samples - negatives))]
        if sum(len(p) for p in picked) < samples:
            raise ValueError(f"the {dataset} test split has too few images with and without {name} for "
                             f"samples={samples}: ask for fewer")
        rows.append(torch.cat(picked))
        row_labels.append(f"{name}\n{negatives} without, {samples - negatives} with")
    images, _ = to_tensors(test.select(torch.cat(rows).tolist()))
    _check_fit(models, dataset, tuple(images.shape[1:]), names)
    targets = torch.tensor([names.index(name) for name in attributes])
    return attribute_sheet(models, images.view(len(attributes), samples, *images.shape[1:]), targets, row_labels,
                           t, step)
