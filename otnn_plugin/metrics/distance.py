"""Distances between explanations: L2 and ``1 - ρ`` with ρ Spearman's rank correlation (paper Sec. 5.1.1, Table 2).

Plain batched torch functions on explanations of any shape ``(B, ...)``, flattened per sample, computed on the
input's device. Ties get the mean of their ranks, as ``scipy.stats.rankdata`` does. A correlation with a constant
vector is undefined; it counts as 0 here, the convention Xplique uses for µFidelity.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .._finite import check_finite

__all__ = [
    "DISTANCES",
    "Distance",
    "average_ranks",
    "check_distance",
    "explanation_distance",
    "pearson_correlation",
    "spearman_correlation",
]

Distance = Literal["l2", "spearman"]
DISTANCES: tuple[str, ...] = ("l2", "spearman")


def average_ranks(values: Tensor) -> Tensor:
    """0-based ranks along the last dimension; tied values share the mean of the ranks they span."""
    values = values if values.is_floating_point() else values.float()
    order = values.argsort(dim=-1)
    ordered = values.gather(-1, order)
    starts_group = torch.ones_like(ordered, dtype=torch.bool)
    starts_group[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    group = starts_group.long().cumsum(-1) - 1
    counts = torch.zeros_like(ordered).scatter_add_(-1, group, torch.ones_like(ordered))
    first_rank = counts.cumsum(-1) - counts
    mean_rank = (first_rank + (counts - 1) / 2).gather(-1, group)
    return torch.empty_like(mean_rank).scatter_(-1, order, mean_rank)


def pearson_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson's r between ``a`` and ``b`` along the last dimension; 0 where either is constant."""
    a_centred = a - a.mean(-1, keepdim=True)
    b_centred = b - b.mean(-1, keepdim=True)
    r = (a_centred * b_centred).sum(-1) / (a_centred.norm(dim=-1) * b_centred.norm(dim=-1))
    constant = (a == a[..., :1]).all(-1) | (b == b[..., :1]).all(-1)
    return torch.where(constant, torch.zeros_like(r), r)


def spearman_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's ρ (Pearson's r of the average ranks) along the last dimension; 0 where either is constant."""
    return pearson_correlation(average_ranks(a), average_ranks(b))


def check_distance(distance: str) -> None:
    """Raise ``ValueError`` unless ``distance`` is one of :data:`DISTANCES`."""
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}: use one of {DISTANCES}")


def explanation_distance(a: Tensor, b: Tensor, distance: Distance = "l2") -> Tensor:
    """Per-sample distance between two batches of explanations of the same shape ``(B, ...)``, shape ``(B,)``.

    ``"l2"``: ``||a - b||_2`` (the Euclidean norm, not its square); ``"spearman"``: ``1 - ρ(a, b)``, in ``[0, 2]``.
    Neither normalises the explanations: scale them first if they come from methods of different scales.
    """
    check_distance(distance)
    if a.shape != b.shape:
        raise ValueError(f"explanations of shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be compared: "
                         "give two batches of the same shape (B, ...)")
    if a.ndim < 2 or a.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch of explanations (B, ...), got shape {tuple(a.shape)}")
    for name, batch in (("a", a), ("b", b)):
        check_finite(batch, f"explanations {name}", "fix the explanation method before comparing")
    a, b = a.flatten(1), b.flatten(1)
    if distance == "l2":
        return (a - b).norm(dim=1)
    return 1 - spearman_correlation(a, b)
