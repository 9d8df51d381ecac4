"""Batch transforms on float images in [0, 1] (paper appendix A.2.1).

The paper normalises images to [0, 1] (done by :func:`otnn_plugin.data.to_tensors`) and augments CelebA with
random crop, horizontal flip, random brightness and random contrast; Fashion-MNIST is not augmented. It gives no
magnitudes: the defaults below are ours.
"""
from __future__ import annotations

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
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"celeba_augment expects a float batch (N, C, H, W), got {tuple(x.shape)} {x.dtype}")
    if shift < 0 or brightness < 0 or not 0 <= contrast[0] <= contrast[1]:
        raise ValueError(f"shift={shift}, brightness={brightness}, contrast={contrast}: need shift >= 0, "
                         "brightness >= 0 and 0 <= low <= high")
    n, _, height, width = x.shape
    source = generator.device if generator is not None else x.device  # draw where the generator lives

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(n, 1, 1, 1, device=source).uniform_(low, high, generator=generator).to(x)

    top, left = torch.randint(2 * shift + 1, (2, n, 1), generator=generator, device=source).to(x.device)
    flip = torch.rand(n, 1, generator=generator, device=source).to(x.device) < 0.5
    rows = top + torch.arange(height, device=x.device)
    cols = left + torch.arange(width, device=x.device)
    cols = torch.where(flip, cols.flip(1), cols)
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate") if shift else x
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded[batch, :, rows.view(n, height, 1), cols.view(n, 1, width)].permute(0, 3, 1, 2)
    out = out + uniform(-brightness, brightness)
    mean = out.mean(dim=(2, 3), keepdim=True)
    return (mean + uniform(*contrast) * (out - mean)).clamp_(0.0, 1.0)
