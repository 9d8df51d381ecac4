"""The perturbation toolkit the fidelity and robustness metrics share, in batched torch: baselines, pixel ranks and
masks, deletion steps, grid cells, blended scores (shared between explainers by :func:`shared_forwards`) and the
trapezoid rule."""
from __future__ import annotations

import contextlib
import hashlib
import math
from contextvars import ContextVar
from typing import Iterator

import torch
from torch import Tensor

from .base import Network, Score, check_targets

__all__ = [
    "Baseline",
    "blended_scores",
    "check_baseline",
    "grid_cells",
    "make_baseline",
    "mean_trapezoid",
    "pixel_ranks",
    "shared_forwards",
    "step_counts",
    "top_pixel_masks",
]

#: ``"zero"``, ``"uniform"`` (noise over the data range) or a constant fill value.
Baseline = str | float


def check_baseline(baseline: Baseline, data_range: tuple[float, float]) -> None:
    """Raise ``ValueError`` unless ``baseline`` is ``"zero"``, ``"uniform"`` or a number, ``data_range`` an interval."""
    is_number = isinstance(baseline, (int, float)) and not isinstance(baseline, bool)
    if not (is_number or baseline in ("zero", "uniform")):
        raise ValueError(f"unknown baseline {baseline!r}: use 'zero', 'uniform' or a number")
    if len(data_range) != 2 or not data_range[0] < data_range[1]:
        raise ValueError(f"data_range must be (low, high) with low < high, got {data_range}")


def make_baseline(
    x: Tensor,
    baseline: Baseline,
    data_range: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> Tensor:
    """The baseline state of every input, shaped like ``x``.

    ``"zero"``: zeros; a number: that constant; ``"uniform"``: independent noise for every pixel and channel, uniform
    over ``data_range``, drawn on the CPU with ``generator`` (so that it does not depend on the device).
    """
    if baseline == "uniform":
        low, high = data_range
        return low + (high - low) * torch.rand(x.shape, generator=generator).to(x.device)
    return torch.zeros_like(x) if baseline == "zero" else torch.full_like(x, float(baseline))


def pixel_ranks(a: Tensor) -> Tensor:
    """Rank of every pixel by channel-mean attribution, 0 for the most important, shape ``(B, H * W)``.

    Ties keep pixel order (a stable sort).
    """
    importance = a.mean(1).flatten(1)
    order = importance.argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(importance.shape[1], device=a.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def top_pixel_masks(a: Tensor, counts: Tensor) -> Tensor:
    """``masks[b, k, p]``: pixel ``p`` is among the ``counts[k]`` most important of sample ``b``; ``(B, K, H * W)``."""
    return pixel_ranks(a)[:, None, :] < counts.to(a.device)[None, :, None]


def step_counts(n_pixels: int, steps: int, max_percentage: float = 1.0) -> Tensor:
    """``n_k = floor(k * floor(n_pixels * max_percentage) / steps)`` for ``k = 0 .. steps`` (Xplique's linspace)."""
    return torch.arange(steps + 1) * math.floor(n_pixels * max_percentage) // steps


def grid_cells(height: int, width: int, grid_size: int | None, device: torch.device) -> tuple[int, Tensor]:
    """The number of cells and the cell of every pixel, ``(H * W,)``, for a ``grid_size`` x ``grid_size`` grid.

    Pixel ``(i, j)`` lies in cell ``(floor(i * g / H), floor(j * g / W))``; ``None`` makes every pixel a cell.
    """
    if grid_size is None:
        return height * width, torch.arange(height * width, device=device)
    if not 1 <= grid_size <= min(height, width):
        raise ValueError(f"grid_size {grid_size} does not fit the {height}x{width} images: use 1 to "
                         f"{min(height, width)}, or None for one cell per pixel")
    rows = torch.arange(height, device=device) * grid_size // height
    cols = torch.arange(width, device=device) * grid_size // width
    return grid_size * grid_size, (rows[:, None] * grid_size + cols[None, :]).flatten()


_SHARED: ContextVar[dict | None] = ContextVar("shared_forwards", default=None)


@contextlib.contextmanager
def shared_forwards() -> Iterator[None]:
    """Within the block, :func:`blended_scores` forwards each distinct set of perturbed inputs once.

    Perturbations that do not depend on the explanation (µFidelity's subsets and baseline, drawn from the metric's
    seed) are then computed once for every explainer: the runner opens one block per batch and model. Inputs are
    recognised by their bytes, so a result is reused only for bit-identical inputs, masks, targets and chunking.
    """
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def _fingerprint(*tensors: Tensor | None) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        if tensor is not None:
            array = tensor.detach().contiguous().cpu()
            digest.update(f"{array.dtype}{tuple(array.shape)}".encode())
            digest.update(array.view(torch.uint8).numpy().tobytes() if array.dtype == torch.bool
                          else array.numpy().tobytes())
    return digest.digest()


@torch.no_grad()
def blended_scores(
    net: Network,
    inside: Tensor,
    outside: Tensor,
    masks: Tensor,
    targets: Tensor,
    batch_size: int,
    cell_of_pixel: Tensor | None = None,
    score: Score = "logit",
) -> Tensor:
    """Target score of ``where(mask, inside, outside)`` for every sample and mask, shape ``(B, M)``.

    ``score``: the raw output or a probability, read by :meth:`Network.select` from each forward's outputs.

    ``inside``, ``outside``: ``(B, C, H, W)``; ``masks``: ``(B, M, n_cells)`` booleans over cells, pixel ``p`` lying
    in cell ``cell_of_pixel[p]`` (default: one cell per pixel), all channels of a pixel together. The ``B * M``
    inputs are built ``batch_size`` at a time, each chunk in one vectorised step, and forwarded once (once per
    :func:`shared_forwards` block when the same inputs come again).
    """
    shared, key = _SHARED.get(), None
    if shared is not None:
        key = (net.identity, batch_size, score, _fingerprint(inside, outside, masks, targets, cell_of_pixel))
        if key in shared:
            return shared[key].clone()
    n_samples, n_masks = masks.shape[:2]
    height, width = inside.shape[-2:]
    flat_masks = masks.flatten(0, 1)
    sample = torch.arange(n_samples, device=inside.device).repeat_interleave(n_masks)
    scores = torch.empty(n_samples * n_masks, device=inside.device)
    for start in range(0, n_samples * n_masks, batch_size):
        rows = slice(start, start + batch_size)
        mask = flat_masks[rows] if cell_of_pixel is None else flat_masks[rows][:, cell_of_pixel]
        mask = mask.view(-1, 1, height, width)
        owner = sample[rows]
        outputs = net(torch.where(mask, inside[owner], outside[owner]))
        if start == 0:  # once, not at every chunk: the check waits for the device
            check_targets(targets, outputs.shape[1])
        scores[rows] = net.select(outputs, targets[owner], score)
    scores = scores.view(n_samples, n_masks)
    if key is not None:
        shared[key] = scores.clone()
    return scores


def mean_trapezoid(curve: Tensor) -> Tensor:
    """Area under evenly spaced curves ``(B, K + 1)`` per unit step: ``mean_k (s_k + s_{k+1}) / 2``, ``(B,)``."""
    return ((curve[:, :-1] + curve[:, 1:]) / 2).mean(1)
