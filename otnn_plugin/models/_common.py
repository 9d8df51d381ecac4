"""What every otnn-plugin model config records, on top of timm's usual fields."""
from __future__ import annotations

from typing import Any

PAPER = dict(
    paper_ids="arXiv:2206.06854",
    paper_name="On the explainable properties of 1-Lipschitz Neural Networks: An Optimal Transport Perspective",
)


def default_cfg(**kwargs: Any) -> dict[str, Any]:
    """A timm pretrained config: input size, mean/std, number of classes, licence and the paper id."""
    return {
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "first_conv": "features.0",
        "classifier": "head",
        **PAPER,
        **kwargs,
    }
