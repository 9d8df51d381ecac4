"""JPEG complexity of explanations (paper Sec. 5.1.1 and Table 12): the compressed size as a proxy of the
Kolmogorov complexity of a map, which, unlike Quantus's entropy or Gini complexity, sees spatial structure."""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from torch import Tensor

from . import register_metric
from .base import TorchMetric, check_attributions, check_explanations

__all__ = ["JPEGComplexity", "grayscale_maps", "jpeg_kilobytes"]


def grayscale_maps(a: Tensor) -> Tensor:
    """``|a|`` averaged over channels, min-max scaled per sample to 0-255 and rounded, ``(B, H, W)`` uint8.

    ``a`` is ``(B, C, H, W)`` or ``(B, H, W)``; a constant map becomes all zeros.
    """
    gray = (a.abs().mean(1) if a.ndim == 4 else a.abs()).flatten(1)
    low, high = gray.min(1, keepdim=True).values, gray.max(1, keepdim=True).values
    scaled = (gray - low) / torch.where(high > low, high - low, torch.ones_like(high))
    return (scaled * 255).round().to(torch.uint8).view(len(a), *a.shape[-2:])


def jpeg_kilobytes(a: Tensor, quality: int = 95) -> Tensor:
    """Size in kB (1000 bytes) of each map of :func:`grayscale_maps` saved as a grayscale JPEG at ``quality``, ``(B,)``.

    Encoding is PIL's, in memory, one sample at a time: the only per-sample loop of the metrics package.
    """
    sizes = []
    for gray in grayscale_maps(a).cpu().numpy():
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(gray), mode="L").save(buffer, format="JPEG", quality=quality)
        sizes.append(buffer.tell() / 1000)
    return torch.tensor(sizes, dtype=torch.float64)


@register_metric
class JPEGComplexity(TorchMetric):
    """Size of the explanation as a grayscale JPEG, in kB; lower is better.

    The map is ``|a|`` averaged over channels and min-max scaled per sample to 0-255 (:func:`grayscale_maps`), then
    saved by PIL at ``quality`` (default 95; the paper does not give its setting) with PIL's default headers, which
    add the same few hundred bytes to every map. The size grows with the map's spatial disorder: a map whose pixels
    are shuffled costs more. The model is not used (it may be None).
    """

    name = "JPEG Complexity"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.COMPLEXITY

    def __init__(self, quality: int = 95, **kwargs):
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be a JPEG quality in 1..100, got {quality}")
        super().__init__(**kwargs)
        self.quality = quality

    def evaluate_batch(self, model, x_batch, y_batch, a_batch, **kwargs) -> list[float]:
        a = torch.as_tensor(a_batch, dtype=torch.float32)
        check_attributions(tuple(a.shape), tuple(np.shape(x_batch)))
        check_explanations(a)
        return jpeg_kilobytes(a, self.quality).tolist()
