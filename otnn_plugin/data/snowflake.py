"""Two concentric Koch snowflakes in 2-D, the toy problem of paper Fig. 2 (Sec. 3).

Label +1 is the inner snowflake (circumradius ``size * inner_ratio``), -1 the outer one (circumradius ``size``).
Points are drawn uniformly along each curve (uniformly over its edges, which all have one length), then moved by
Gaussian ``noise``. The paper does not say how it sampled; this is our reading of Fig. 2-a.

With ``noise=0`` and ``depth >= 1`` a circle separates the classes when ``inner_ratio < 1/sqrt(3)`` (default 0.5):
the outer curve never comes closer to the centre than ``size / sqrt(3)`` (its inner corners, at the thirds of the
first triangle's sides), and the inner curve stays within ``size * inner_ratio``.

Splits are independent draws: ``train`` uses the random stream ``[seed, 0]``, ``test`` ``[seed, 1]``.
"""
from __future__ import annotations

import numpy as np
from datasets import Dataset, Value

from . import register_dataset
from ._arrow import build_dataset

_SPLIT_STREAMS = {"train": 0, "test": 1}
MAX_DEPTH = 8
_CLOCKWISE_60 = np.array([[0.5, -np.sqrt(3) / 2], [np.sqrt(3) / 2, 0.5]])  # row vectors: v @ R turns v by -60°


def koch_snowflake(depth: int, radius: float = 1.0) -> np.ndarray:
    """Vertices (3 * 4**depth, 2), counter-clockwise, of the Koch snowflake around an equilateral triangle of
    circumradius ``radius`` centred at the origin with a vertex pointing up."""
    angles = np.deg2rad([90.0, 210.0, 330.0])
    vertices = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for _ in range(depth):
        third = (np.roll(vertices, -1, axis=0) - vertices) / 3
        bump = vertices + third + third @ _CLOCKWISE_60  # right of a counter-clockwise edge is outside
        vertices = np.stack([vertices, vertices + third, bump, vertices + 2 * third], axis=1).reshape(-1, 2)
    return vertices


def _on_curve(vertices: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    edge = rng.integers(len(vertices), size=n)
    start, end = vertices[edge], vertices[(edge + 1) % len(vertices)]
    return start + rng.random((n, 1)) * (end - start)


@register_dataset("snowflake")
def load(
    split: str,
    data_dir=None,
    n: int = 2000,
    seed: int = 0,
    depth: int = 4,
    size: float = 1.0,
    inner_ratio: float = 0.5,
    noise: float = 0.0,
) -> Dataset:
    """``n`` points (half per class, rows shuffled): ``point`` (2 float32) and ``label`` (float32, -1 or +1).

    The points are generated: ``data_dir`` is accepted for a uniform signature and not read.
    """
    if not (isinstance(n, int) and n >= 2 and n % 2 == 0):
        raise ValueError(f"n={n!r}: the number of points must be an even integer >= 2 (half per snowflake)")
    if not (isinstance(depth, int) and 0 <= depth <= MAX_DEPTH):
        raise ValueError(f"depth={depth!r}: the Koch iteration depth must be an integer in 0..{MAX_DEPTH}")
    if not (size > 0 and 0 < inner_ratio < 1 and noise >= 0):
        raise ValueError(f"size={size}, inner_ratio={inner_ratio}, noise={noise}: need size > 0, "
                         "0 < inner_ratio < 1 and noise >= 0")
    rng = np.random.default_rng([seed, _SPLIT_STREAMS[split]])
    shape = koch_snowflake(depth)
    points = np.concatenate([_on_curve(size * inner_ratio * shape, n // 2, rng), _on_curve(size * shape, n // 2, rng)])
    points += noise * rng.standard_normal(points.shape)
    labels = np.repeat(np.array([1.0, -1.0], dtype=np.float32), n // 2)
    order = rng.permutation(n)
    columns = {"point": points[order].astype(np.float32), "label": labels[order]}
    return build_dataset(columns, {"label": Value("float32")})


def label_names() -> tuple[str, ...]:
    """Names of labels -1 and +1."""
    return ("outer", "inner")
