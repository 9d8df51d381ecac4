"""Training precision: fp32, or bf16 autocast where it keeps the model's guarantees.

bf16 keeps 8 bits of mantissa. Under autocast every convolution and linear layer computes with its weight rounded
to bf16, and rounding an orthonormalised weight moves its operator norm off 1 (a 256x256 ``SpectralLinear`` goes
to about 1.002), and the network's bound is the product over its layers. An OTNN trained that way is no longer
1-Lipschitz within the 1e-3 the tests allow, so :func:`check_precision` measures it (power iteration on the
bf16-rounded weights of the exported network) and refuses bf16 for OTNNs whose bound it breaks; the unconstrained twins, which certify nothing, may use it.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from ..lipschitz import is_otnn, layer_operator_norms
from ..models import export_vanilla

PRECISIONS = ("fp32", "bf16")

#: How far above 1 the network's bound (the product of its layer norms) may go, as in the Lipschitz tests.
LIPSCHITZ_TOLERANCE = 1e-3


def check_precision(model: nn.Module, precision: str, input_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` if ``precision`` is unknown, or breaks the 1-Lipschitz bound of an OTNN ``model``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision == "fp32" or not is_otnn(model):
        return
    rounded = export_vanilla(model).to(torch.bfloat16).float()
    bound = math.prod(layer_operator_norms(rounded, input_shape, n_iter=50).values())
    if bound > 1 + LIPSCHITZ_TOLERANCE:
        raise ValueError(f"precision {precision} breaks the 1-Lipschitz bound of this OTNN: with bf16-rounded weights "
                         f"the product of its layer norms is {bound:.4f} > 1 + {LIPSCHITZ_TOLERANCE:g}; train OTNNs in "
                         "fp32 (bf16 is fine for unconstrained models)")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
