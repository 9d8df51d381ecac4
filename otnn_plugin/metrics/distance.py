"""Distances between explanations: relative L2, L2 and ``1 - ρ``, ρ Spearman's rank correlation (Tables 2 and 4).

The paper compares an OTNN's explanations with its unconstrained twin's by L2 and ``1 - ρ`` (Sec. 5.1.1, A.4.2).
Raw L2 grows with the scale of the maps, i.e. with the gradient norm, which is far smaller for an OTNN (at most 1)
than for its twin, so it compares scales as much as explanations; the relative L2 ``||a - b|| / ||a||`` does not,
and is the default.

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

Distance = Literal["relative_l2", "l2", "spearman"]
DISTANCES: tuple[str, ...] = ("relative_l2", "l2", "spearman")


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


def explanation_distance(a: Tensor, b: Tensor, distance: Distance = "relative_l2") -> Tensor:
    """Per-sample distance from explanations ``a`` to ``b``, batches of the same shape ``(B, ...)``, shape ``(B,)``.

    ``"relative_l2"``: ``||a - b||_2 / ||a||_2``, scale-free (0 where ``a = b = 0``, infinite where only ``a`` is 0);
    ``"l2"``: ``||a - b||_2`` (the Euclidean norm, not its square), in the maps' units; ``"spearman"``:
    ``1 - ρ(a, b)``, in ``[0, 2]``, scale-free.
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
    if distance == "spearman":
        return 1 - spearman_correlation(a, b)
    difference = (a - b).norm(dim=1)
    if distance == "l2":
        return difference
    return torch.where(difference == 0, torch.zeros_like(difference), difference / a.norm(dim=1))
