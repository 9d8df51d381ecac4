"""Image helpers shared by the figures: inputs shown as images, signed maps in red/green, atomic PNG files.

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state); ``savefig`` renders them with Agg.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from .._files import atomic_write_bytes, check_output

__all__ = ["show_image", "show_signed", "signed_rgb", "check_png_path", "save_png"]


def _check_image(image: Tensor) -> None:
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected one image (C, H, W) with 1 or 3 channels, got shape {tuple(image.shape)}")


def _bare(ax: Axes) -> Axes:
    """No ticks and no frame; unlike ``axis('off')`` the axis labels stay visible."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return ax


def show_image(ax: Axes, image: Tensor) -> None:
    """Draw an input image ``(C, H, W)`` with values in [0, 1]; values outside are clipped (gray for C = 1)."""
    _check_image(image)
    pixels = image.detach().to("cpu", torch.float32).clamp(0, 1)
    if pixels.shape[0] == 1:
        ax.imshow(pixels[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(pixels.permute(1, 2, 0).numpy(), interpolation="nearest")
    _bare(ax)


def signed_rgb(values: Tensor) -> np.ndarray:
    """An ``(H, W)`` map as an RGB array: negative values red, positive green, zero black (paper Fig. 1).

    The map is scaled by its own largest ``|value|``, so only its shape and sign are shown, not its size.
    """
    if values.dim() != 2:
        raise ValueError(f"expected one (H, W) map, got shape {tuple(values.shape)}")
    scaled = values.detach().to("cpu", torch.float32)
    scaled = scaled / scaled.abs().max().clamp_min(torch.finfo(torch.float32).tiny)
    rgb = torch.zeros((*scaled.shape, 3))
    rgb[..., 0] = (-scaled).clamp(0, 1)
    rgb[..., 1] = scaled.clamp(0, 1)
    return rgb.numpy()


def show_signed(ax: Axes, attribution: Tensor) -> None:
    """Draw an attribution ``(C, H, W)`` in red/green; several channels are averaged first (paper Fig. 4)."""
    _check_image(attribution)
    ax.imshow(signed_rgb(attribution.mean(0)), interpolation="nearest")
    _bare(ax)


def check_png_path(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path`` if a PNG can be written there (see :func:`check_output`); check it before long work,
    not after."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG: give a path ending in .png, got {str(path)!r}")
    return check_output(path, folder=False)


def save_png(figure: Figure, path: str | os.PathLike, dpi: int = 100, colors: int | None = 256) -> Path:
    """Render ``figure`` as a PNG at ``path`` atomically: the complete new file or the previous one, never half.

    ``colors``: size of the adaptive palette the image is reduced to (photo sheets shrink about 3x at 256);
    ``None`` keeps full RGBA.
    """
    path = check_png_path(path)
    if colors is not None and not 2 <= colors <= 256:
        raise ValueError(f"colors is a palette size in 2..256 (or None for full colour), got {colors}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    if colors is not None:
        palette = PIL.Image.open(buffer).convert("RGB").quantize(colors=colors, method=PIL.Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        palette.save(buffer, format="png", optimize=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path
