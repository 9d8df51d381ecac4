"""Uncertainty over the samples: paired bootstrap intervals of a difference, and how often a rank holds.

Both resample the evaluated samples with replacement (Efron's bootstrap, percentile intervals), with one seeded
generator, so a leaderboard rebuilt from the same results gives the same intervals. Pairing: the two networks (or
two explainers) were scored on the same samples, so the difference is resampled sample by sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "paired_difference", "rank_frequencies"]

#: Bootstrap resamples, and the seed of their draws.
RESAMPLES = 2000
SEED = 0


@dataclass
class Interval:
    """Mean of ``a - b`` over ``n`` paired samples, with its bootstrap ``level`` interval ``[low, high]``."""

    n: int
    mean: float
    low: float
    high: float
    level: float = 0.95

    def excludes_zero(self) -> int:
        """``+1`` when the interval lies above 0, ``-1`` below, ``0`` when it contains 0."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def _resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95, resamples: int = RESAMPLES,
                      seed: int = SEED) -> Interval | None:
    """The mean of ``a - b`` with its percentile bootstrap interval; pairs with a non-finite value are left out.
    ``None`` below 2 pairs."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same shape, got {a.shape} and {b.shape}")
    difference = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if len(difference) < 2:
        return None
    means = difference[_resamples(len(difference), resamples, seed)].mean(1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(len(difference), float(difference.mean()), float(low), float(high), level)


def rank_frequencies(scores: dict[str, np.ndarray], direction: str, resamples: int = RESAMPLES,
                     seed: int = SEED) -> dict[str, np.ndarray]:
    """For each key, how often (fraction of resamples) it takes each competition rank 1..K, shape ``(K,)``.

    ``scores``: per-sample scores of the K explainers on the same samples (``(n,)`` each); a sample with a
    non-finite score for any explainer is left out. Ranks as the leaderboard's: 1 = best in ``direction``, ties
    share the best rank.
    """
    keys = list(scores)
    table = np.stack([np.asarray(scores[k], dtype=np.float64) for k in keys])  # (K, n)
    table = table[:, np.isfinite(table).all(0)]
    if table.shape[1] < 2:
        return {}
    sign = -1.0 if direction == "higher" else 1.0
    means = sign * table[:, _resamples(table.shape[1], resamples, seed)].mean(-1)  # (K, resamples), lower is better
    ranks = 1 + (means[None, :, :] < means[:, None, :]).sum(1)  # (K, resamples)
    return {key: np.bincount(ranks[k], minlength=len(keys) + 1)[1:] / resamples for k, key in enumerate(keys)}
