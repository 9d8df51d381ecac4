"""Human alignment of explanations: Spearman's rank correlation between an explanation and a human importance map,
the ClickMe / Harmonization protocol (ClickMe maps: Linsley et al., "Learning what and where to attend", ICLR 2019,
arXiv 2018; the alignment score: Fel et al., "Harmonizing the object recognition strategies of deep neural networks
with humans", NeurIPS 2022)."""
from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from torch import Tensor
from torch.nn import functional as F

from .._finite import check_finite
from . import register_metric
from .base import TorchMetric, check_attributions, check_explanations
from .distance import spearman_correlation

__all__ = ["CHANNEL_REDUCTIONS", "HumanAlignment", "gaussian_blur", "human_alignment"]

ChannelReduction = Literal["max", "sum"]
CHANNEL_REDUCTIONS: tuple[str, ...] = ("max", "sum")


def gaussian_blur(maps: Tensor, sigma: float) -> Tensor:
    """``maps`` ``(B, H, W)`` blurred by a Gaussian of standard deviation ``sigma`` pixels: separable, truncated at
    ``3 sigma``, borders replicated."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    blurred = F.pad(maps[:, None], (radius,) * 4, mode="replicate")
    blurred = F.conv2d(F.conv2d(blurred, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))
    return blurred[:, 0]


def human_alignment(a: Tensor, maps: Tensor, sigma: float = 0.0, channels: ChannelReduction = "max") -> Tensor:
    """Spearman's ρ, per sample ``(B,)``, between ``|a|`` reduced over its channels and the human ``maps``.

    ``a`` is ``(B, C, H, W)`` or ``(B, H, W)``, ``maps`` ``(B, 1, H, W)`` or ``(B, H, W)``; ``maps`` are blurred by
    :func:`gaussian_blur` first when ``sigma > 0``. Ties share their mean rank; a constant map scores 0.
    """
    if channels not in CHANNEL_REDUCTIONS:
        raise ValueError(f"channels must be one of {', '.join(CHANNEL_REDUCTIONS)}, got {channels!r}")
    saliency = a.abs()
    if saliency.ndim == 4:
        saliency = saliency.amax(1) if channels == "max" else saliency.sum(1)
    maps = maps[:, 0] if maps.ndim == 4 else maps
    if maps.shape != saliency.shape:
        raise ValueError(f"human maps of shape {tuple(maps.shape)} do not match explanations {tuple(a.shape)}: give "
                         "one (H, W) map per explained image")
    if sigma > 0:
        maps = gaussian_blur(maps, sigma)
    return spearman_correlation(saliency.flatten(1).double(), maps.flatten(1).double())


@register_metric
class HumanAlignment(TorchMetric):
    """Spearman's ρ between the explanation and a human importance map of the same image; higher is better.

    The protocol of Harmonization's ClickMe evaluation (see the module docstring): the absolute explanation, its
    maximum over channels (``channels='max'``, the saliency map of Harmonization's code; ``'sum'`` adds the channels
    instead), the human map optionally blurred by a Gaussian of ``sigma`` pixels (default 0: as given; Harmonization
    blurs the ClickMe maps before comparing), then ρ over all pixels (:func:`human_alignment`). Quantus's ``abs``
    option changes nothing here, the absolute value being part of the definition. Harmonization reports the mean ρ
    divided by the agreement between humans (0.65753 for ClickMe's validation maps in its code); divide the mean of
    these scores by the ceiling of your maps to compare with it.

    The human maps are Quantus's ``s_batch``, its argument for ground-truth maps: ``(N, 1, H, W)`` or ``(N, H, W)``,
    on any scale (only ranks count). The evaluation runner passes a dataset's ``human_map`` column as ``s_batch``
    (``imagefolder`` with ``human_maps/``, :mod:`otnn_plugin.data.imagefolder`). The model is not used (it may be
    None).
    """

    name = "Human Alignment"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.LOCALISATION

    def __init__(self, sigma: float = 0.0, channels: ChannelReduction = "max", **kwargs):
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be a blur width in pixels >= 0 (0: no blur), got {sigma}")
        if channels not in CHANNEL_REDUCTIONS:
            raise ValueError(f"channels must be one of {', '.join(CHANNEL_REDUCTIONS)}, got {channels!r}")
        super().__init__(**kwargs)
        self.sigma, self.channels = float(sigma), channels

    def evaluate_batch(self, model, x_batch, y_batch, a_batch, s_batch: Any = None, **kwargs) -> list[float]:
        if s_batch is None:
            raise ValueError("HumanAlignment compares explanations with human maps: pass them as s_batch (N, 1, H, W), "
                             "or evaluate a dataset with a human_map column (imagefolder with human_maps/)")
        a = torch.as_tensor(a_batch, dtype=torch.float32)
        check_attributions(tuple(a.shape), tuple(np.shape(x_batch)))
        check_explanations(a)
        maps = torch.as_tensor(np.asarray(s_batch), dtype=torch.float32)
        check_finite(maps, "s_batch (the human maps)", "repair those maps")
        return human_alignment(a, maps, self.sigma, self.channels).tolist()
