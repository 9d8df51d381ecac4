"""Batch transforms on float images in [0, 1] (paper appendix A.2.1).

The paper normalises images to [0, 1] (done by :func:`otnn_plugin.data.to_tensors`) and augments CelebA with
random crop, horizontal flip, random brightness and random contrast; Fashion-MNIST is not augmented. It gives no
magnitudes: the defaults below are ours. :func:`fashion_mnist_augment` (shifts and flips) is not in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F


def celeba_augment(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    shift: int = 8,
    brightness: float = 0.1,
    contrast: tuple[float, float] = (0.8, 1.2),
) -> torch.Tensor:
    """Paper A.2.1's CelebA augmentation of a float batch (N, C, H, W) in [0, 1], each image drawn independently.

    * Random crop, as pad-and-crop: the image is padded by ``shift`` pixels on every side (edges repeated) and an
      H x W window is cut at a random offset, i.e. shifted by up to ``shift`` pixels each way; the size is kept.
    * Horizontal flip with probability 1/2.
    * Brightness: add ``delta`` drawn in [-brightness, brightness].
    * Contrast: ``mean + factor * (x - mean)``, per image and channel, ``factor`` drawn in ``contrast``.
    * Clamp to [0, 1].

    One gather does crop and flip together, so there is no loop over samples; the result is on ``x``'s device.
    """
    if shift < 0 or brightness < 0 or not 0 <= contrast[0] <= contrast[1]:
        raise ValueError(f"shift={shift}, brightness={brightness}, contrast={contrast}: need shift >= 0, "
                         "brightness >= 0 and 0 <= low <= high")
    out = _shift_and_flip(x, generator, shift)
    source = generator.device if generator is not None else x.device  # draw where the generator lives

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(len(x), 1, 1, 1, device=source).uniform_(low, high, generator=generator).to(x)

    out = out + uniform(-brightness, brightness)
    mean = out.mean(dim=(2, 3), keepdim=True)
    return (mean + uniform(*contrast) * (out - mean)).clamp_(0.0, 1.0)


def _shift_and_flip(x: torch.Tensor, generator: torch.Generator | None, shift: int) -> torch.Tensor:
    """Each image shifted by up to ``shift`` pixels each way (edges repeated) and mirrored with probability 1/2."""
    if x.ndim != 4 or not x.is_floating_point() or shift < 0:
        raise ValueError(f"augmentation expects a float batch (N, C, H, W) and shift >= 0, got {tuple(x.shape)} "
                         f"{x.dtype}, shift={shift}")
    n, _, height, width = x.shape
    source = generator.device if generator is not None else x.device
    top, left = torch.randint(2 * shift + 1, (2, n, 1), generator=generator, device=source).to(x.device)
    flip = torch.rand(n, 1, generator=generator, device=source).to(x.device) < 0.5
    rows = top + torch.arange(height, device=x.device)
    cols = left + torch.arange(width, device=x.device)
    cols = torch.where(flip, cols.flip(1), cols)
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate") if shift else x
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, :, rows.view(n, height, 1), cols.view(n, 1, width)].permute(0, 3, 1, 2)


def fashion_mnist_augment(x: torch.Tensor, generator: torch.Generator | None = None, shift: int = 2) -> torch.Tensor:
    """Not in the paper (A.2.1 trains Fashion-MNIST without augmentation): the crop and flip of
    :func:`celeba_augment` alone, a shift by up to ``shift`` pixels each way and a horizontal flip with probability
    1/2, for OTNNs that overfit. Fashion-MNIST's borders are black, so the repeated edges pad with black."""
    return _shift_and_flip(x, generator, shift)


@dataclass(frozen=True)
class Augmentation:
    """A batch transform for ``augment: true`` and the line a model card says about it."""

    transform: Callable[..., torch.Tensor]
    summary: str


#: The augmentation ``augment: true`` applies, by dataset.
AUGMENTATIONS = {
    "celeba": Augmentation(celeba_augment, "the paper's augmentation (A.2.1: random crop, horizontal flip, brightness, "
                                           "contrast)"),
    "fashion_mnist": Augmentation(fashion_mnist_augment, "shifts of up to 2 pixels and horizontal flips (not in the "
                                                         "paper)"),
}


def describe_augmentations() -> str:
    """What ``augment: true`` does, dataset by dataset, in one line (recipe schema and CLI help)."""
    return "; ".join(f"{dataset}: {augmentation.summary}" for dataset, augmentation in AUGMENTATIONS.items())
