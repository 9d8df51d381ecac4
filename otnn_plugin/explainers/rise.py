"""RISE, randomized input sampling (Petsiuk et al. 2018), as a Captum attribution; the paper uses N = 4000 (A.4.1).

Captum has no RISE (captum issue #1150). Masks follow Petsiuk et al.: a ``grid_size x grid_size`` grid of cells
kept with probability ``p``, upsampled bilinearly to ``(grid_size + 1) * cell`` pixels per side
(``cell = ceil(side / grid_size)``), then cropped to the input size at a random shift in ``[0, cell)``. The
saliency of pixel ``u`` is ``sum_i f(x * M_i) M_i(u) / (N p)``. The score ``f`` is the raw target output, as
Xplique uses it for the paper; pass a forward function ending in a softmax for probabilities.

With raw outputs, an image whose every masked version scores negative (a face far from the Mustache side of a
multilabel head) gets a map that is negative everywhere, which Quantus's metrics reject. ``center=True`` subtracts
the mean masked score first: ``sum_i (f(x * M_i) - mean_j f(x * M_j)) M_i(u) / (N p)``, an estimate of
``E[f | M(u) = 1] - E[f]`` (how much keeping ``u`` raises the score) instead of ``E[f | M(u) = 1]``. Both estimate
maps that differ by a constant, so they rank pixels alike as ``N`` grows; the centred one is also less noisy
(the mean score is a control variate for the number of masks that keep each pixel).

Speed: the forward passes are nearly all the cost (building the masks is under 1 % of it). They run under
``torch.inference_mode`` with a model's 4-d weights and the masked images in ``channels_last`` layout, restored
after the call (1.5-1.7x on the unconstrained VGGs on one CPU thread, about 1.0-1.1x on the exported OTNNs, whose
circular padding and GroupSort2 cost more in that layout). ``precision="bf16"`` runs the forwards under bfloat16
autocast; the scores are accumulated in the inputs' dtype either way (see benchmarks/results/rise-precision.md for
how much bf16 changes the maps).
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Literal, get_args

import torch
from captum.attr import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor, nn
from torch.nn import functional as F

from .._finite import check_model_outputs
from ..lipschitz import explaining
from ._inputs import Target, check_inputs, format_target, select_scores

__all__ = ["Rise", "rise_masks"]

Precision = Literal["fp32", "bf16"]


def _draw_grids(
    n_masks: int, grid_size: int, probability: float, size: tuple[int, int], seed: int, device: torch.device
) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """All the randomness of RISE, drawn at once: binary grids ``(N, s, s)``, shifts ``(N, 2)``, the cell size."""
    if n_masks < 1 or grid_size < 1:
        raise ValueError(f"n_masks and grid_size must be >= 1, got {n_masks} and {grid_size}")
    if not 0.0 < probability <= 1.0:
        raise ValueError(f"probability (of keeping a grid cell) must lie in (0, 1], got {probability}")
    generator = torch.Generator(device=device).manual_seed(seed)
    cell = (math.ceil(size[0] / grid_size), math.ceil(size[1] / grid_size))
    grids = torch.rand((n_masks, grid_size, grid_size), generator=generator, device=device) < probability
    shifts = torch.stack(
        [torch.randint(c, (n_masks,), generator=generator, device=device) for c in cell], dim=1
    )
    return grids, shifts, cell


def _upsample_and_crop(grids: Tensor, shifts: Tensor, cell: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Masks ``(n, H, W)``: each grid upsampled bilinearly to ``(s + 1) * cell`` and cropped at its shift."""
    n, s = grids.shape[0], grids.shape[-1]
    upsampled = F.interpolate(
        grids[:, None].float(), size=((s + 1) * cell[0], (s + 1) * cell[1]), mode="bilinear", align_corners=False
    )[:, 0]
    rows = shifts[:, 0, None] + torch.arange(size[0], device=grids.device)
    cols = shifts[:, 1, None] + torch.arange(size[1], device=grids.device)
    index = torch.arange(n, device=grids.device)[:, None, None]
    return upsampled[index, rows[:, :, None], cols[:, None, :]]


def rise_masks(
    n_masks: int,
    size: tuple[int, int],
    grid_size: int = 7,
    probability: float = 0.5,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The ``(n_masks, H, W)`` masks, in ``[0, 1]``, that :class:`Rise` uses with the same arguments."""
    grids, shifts, cell = _draw_grids(n_masks, grid_size, probability, size, seed, torch.device(device))
    return _upsample_and_crop(grids, shifts, cell, size)


@contextlib.contextmanager
def _channels_last(model: object) -> Iterator[None]:
    """Run the body with the 4-d parameters of ``model`` (if a module) in ``channels_last`` layout, then put the
    original tensors back, so that the model is left as it was."""
    originals = [(p, p.data) for p in model.parameters() if p.dim() == 4] if isinstance(model, nn.Module) else []
    try:
        for parameter, data in originals:
            parameter.data = data.contiguous(memory_format=torch.channels_last)
        yield
    finally:
        for parameter, data in originals:
            parameter.data = data


class Rise(PerturbationAttribution):
    """RISE saliency of image inputs ``(N, C, H, W)``; one map per sample, shared by its channels.

    ``Rise(forward_func)``: a model or any function of a batch; a model runs in eval mode during the call.
    """

    @log_usage()
    def attribute(
        self,
        inputs: Tensor,
        target: Target = None,
        n_masks: int = 4000,
        grid_size: int = 7,
        probability: float = 0.5,
        batch_size: int = 256,
        seed: int = 0,
        center: bool = False,
        precision: Precision = "fp32",
    ) -> Tensor:
        """Saliency shaped like ``inputs``: ``sum_i f(x * M_i) M_i / (N p)`` over ``n_masks`` seeded masks, with
        ``f(x * M_i)`` less its mean over the masks when ``center`` (see the module docstring).

        Masks are drawn once (so results depend on ``seed``, not on ``batch_size``) and built on the inputs'
        device in chunks; each forward pass sees at most ``batch_size`` masked images (at least one mask).
        ``precision="bf16"`` runs the forward passes under bfloat16 autocast (faster only on hardware with bf16
        arithmetic); the sums stay in the inputs' dtype.
        """
        inputs = check_inputs(inputs, self.forward_func)
        if inputs.dim() != 4:
            raise ValueError(f"RISE masks images (N, C, H, W), got inputs of shape {tuple(inputs.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size (masked images per forward pass) must be >= 1, got {batch_size}")
        if precision not in get_args(Precision):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        batch, size = len(inputs), (inputs.shape[2], inputs.shape[3])
        target = format_target(target, batch, inputs.device)
        grids, shifts, cell = _draw_grids(n_masks, grid_size, probability, size, seed, inputs.device)
        masks_per_pass = max(1, batch_size // batch)
        saliency = inputs.new_zeros((batch, size[0] * size[1]))
        score_sum, kept = inputs.new_zeros((batch, 1)), inputs.new_zeros((1, size[0] * size[1]))
        mode = explaining(self.forward_func) if isinstance(self.forward_func, nn.Module) else contextlib.nullcontext()
        with mode, _channels_last(self.forward_func), torch.inference_mode():
            for start in range(0, n_masks, masks_per_pass):
                chunk = slice(start, start + masks_per_pass)
                masks = _upsample_and_crop(grids[chunk], shifts[chunk], cell, size).to(inputs.dtype)
                n = len(masks)
                masked = (inputs[:, None] * masks[None, :, None]).flatten(0, 1)
                chunk_target = None if target is None else target.repeat_interleave(n)
                with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    outputs = self.forward_func(masked.contiguous(memory_format=torch.channels_last))
                scores = select_scores(outputs, chunk_target).to(inputs.dtype).view(batch, n)
                saliency += scores @ masks.flatten(1)
                score_sum += scores.sum(1, keepdim=True)
                kept += masks.flatten(1).sum(0, keepdim=True)
        check_model_outputs(score_sum, what="the model's outputs on masked inputs")
        if center:  # sum_i (s_i - mean s) M_i = sum_i s_i M_i - mean(s) sum_i M_i
            saliency -= (score_sum / n_masks) * kept
        saliency = saliency / (n_masks * probability)
        return saliency.view(batch, 1, *size).expand_as(inputs).clone()
