"""The linear control: multinomial logistic regression on pixels, scored beside an OTNN and its twin.

A linear classifier has the same saliency map everywhere (its weight row) and a first-order Taylor expansion that is
exact, so it passes several explanation metrics for reasons that have nothing to do with optimal transport: a
result it reproduces is not evidence for the paper's claims (the evaluation-honesty issue). ``linear_fashionmnist``
and ``linear_celeba`` (22 logistic regressions, one per label, on the 3x109x89 values) are ``f(x) = W vec(x) + b``;
their one "feature stage" is the input itself, so Grad-CAM runs on it too.
"""
from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, register_model
from torch import nn

from ._common import (CELEBA_SUBSET, CELEBA_SUBSET_TAG, check_pretrained, default_cfg, generate_cfgs,
                      with_pretrained_file)

__all__ = ["LinearClassifier"]


class LinearClassifier(nn.Module):
    """``f(x) = W vec(x) + b`` for images ``(N, C, H, W)`` of a fixed size."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, img_size: tuple[int, int] = (28, 28)) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.img_size = num_classes, in_chans, tuple(img_size)
        self.features = nn.Identity()  # Grad-CAM's "last stage": the input pixels
        self.feature_info = [dict(num_chs=in_chans, reduction=1, module="features")]
        self.num_features = self.head_hidden_size = in_chans * self.img_size[0] * self.img_size[1]
        self.head = nn.Linear(self.num_features, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes, self.head = num_classes, nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.in_chans, *self.img_size):
            raise ValueError(f"LinearClassifier takes (N, {self.in_chans}, {self.img_size[0]}, {self.img_size[1]}) "
                             f"batches, got shape {tuple(x.shape)}")
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.flatten(1) if pre_logits else self.head(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


default_cfgs = generate_cfgs({
    "linear_fashionmnist": default_cfg(
        num_classes=10, input_size=(1, 28, 28), mean=(0.0,), std=(1.0,), license="mit", first_conv="head",
        description="linear control for Fashion-MNIST: multinomial logistic regression on the 784 pixels",
    ),
    f"linear_celeba.{CELEBA_SUBSET_TAG}": default_cfg(
        **{**CELEBA_SUBSET, "description": "linear control for CelebA: a logistic regression per label on the "
                                          "3x109x89 values, trained on a 10,000-image subset at 109x89"},
        first_conv="head",
    ),
})


def _create_linear(variant: str, pretrained: bool, **kwargs) -> LinearClassifier:
    """``LinearClassifier`` with ``variant``'s pretrained config, its weights checked when loaded."""
    model = build_model_with_cfg(LinearClassifier, variant, pretrained,
                                 **with_pretrained_file(variant, pretrained, kwargs))
    if pretrained:
        check_pretrained(model, variant, (model.in_chans, *model.img_size))
    return model


@register_model
def linear_fashionmnist(pretrained: bool = False, **kwargs) -> LinearClassifier:
    """Multinomial logistic regression on Fashion-MNIST pixels: the evaluations' linear control."""
    return _create_linear("linear_fashionmnist", pretrained, **kwargs)


@register_model
def linear_celeba(pretrained: bool = False, **kwargs) -> LinearClassifier:
    """A logistic regression per CelebA label on the pixels at 109x89: the CelebA evaluations' linear control."""
    return _create_linear("linear_celeba", pretrained, **kwargs)
