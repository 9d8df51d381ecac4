"""Dense networks on 2-D points for the Koch snowflake demo (paper Fig. 2).

``otnn_mlp_snowflake`` stacks deel-torchlip ``SpectralLinear`` layers with ``GroupSort2``; its unconstrained twin
uses ``Linear`` + ``ReLU``. The output is one score ``f(x)`` whose sign is the class (paper Eq. 1).
"""
from __future__ import annotations

from typing import Sequence

import torch
from timm.models import build_model_with_cfg, register_model
from torch import nn

from ..layers import GroupSort2, SpectralLinear
from ._common import check_pretrained, default_cfg, generate_cfgs, with_pretrained_file

__all__ = ["MLP"]

DEFAULT_HIDDEN = (128,) * 4


class MLP(nn.Module):
    """A dense network, 1-Lipschitz when ``lipschitz=True``.

    ``in_chans`` is the number of input features; timm's ``input_size`` stores a point as ``(features, 1, 1)``
    and the network accepts both ``(B, features)`` and ``(B, features, 1, 1)``.
    """

    def __init__(
        self, lipschitz: bool, num_classes: int = 1, in_chans: int = 2, hidden: Sequence[int] = DEFAULT_HIDDEN
    ) -> None:
        super().__init__()
        if any(w % 2 for w in hidden) and lipschitz:
            raise ValueError(f"GroupSort2 needs even hidden widths, got {tuple(hidden)}")
        self.is_lipschitz = lipschitz
        self.num_classes = num_classes
        linear = SpectralLinear if lipschitz else nn.Linear
        layers: list[nn.Module] = []
        self.feature_info: list[dict] = []
        in_features = in_chans
        for width in hidden:
            layers += [linear(in_features, width), GroupSort2() if lipschitz else nn.ReLU()]
            self.feature_info.append(dict(num_chs=width, reduction=1, module=f"features.{len(layers) - 1}"))
            in_features = width
        self.features = nn.Sequential(*layers)
        self.num_features = self.head_hidden_size = in_features
        self.head = linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            raise ValueError("an MLP has no pooling; pass global_pool=None")
        self.num_classes = num_classes
        linear = SpectralLinear if self.is_lipschitz else nn.Linear
        self.head = linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.shape[2:] == (1, 1):
            x = x.flatten(1)
        if x.dim() != 2:
            raise ValueError(f"MLP expects inputs of shape (batch, features) or (batch, features, 1, 1), "
                             f"got {tuple(x.shape)}")
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create_mlp(variant: str, pretrained: bool, **kwargs) -> MLP:
    out_indices = kwargs.pop("out_indices", tuple(range(len(kwargs.get("hidden", DEFAULT_HIDDEN)))))
    model = build_model_with_cfg(
        MLP, variant, pretrained, lipschitz=variant.startswith("otnn_"),
        feature_cfg=dict(flatten_sequential=True, out_indices=out_indices),
        **with_pretrained_file(variant, pretrained, kwargs),
    )
    if pretrained and not kwargs.get("features_only"):
        check_pretrained(model, variant, (kwargs.get("in_chans", 2),))
    return model


default_cfgs = generate_cfgs({
    f"{family}_mlp_snowflake": default_cfg(
        num_classes=1, input_size=(2, 1, 1), mean=(0.0, 0.0), std=(1.0, 1.0), license="mit",
        description="binary classifier of two concentric Koch snowflakes; the sign of f(x) is the class",
    )
    for family in ("otnn", "unconstrained")
})


@register_model
def otnn_mlp_snowflake(pretrained: bool = False, **kwargs) -> MLP:
    """1-Lipschitz dense binary classifier on 2-D points (paper Fig. 2)."""
    return _create_mlp("otnn_mlp_snowflake", pretrained, **kwargs)


@register_model
def unconstrained_mlp_snowflake(pretrained: bool = False, **kwargs) -> MLP:
    """Unconstrained twin of ``otnn_mlp_snowflake`` (Linear + ReLU)."""
    return _create_mlp("unconstrained_mlp_snowflake", pretrained, **kwargs)
