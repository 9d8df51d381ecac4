"""The one check that a batch holds only finite numbers, shared by explainers, metrics and evaluations."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["check_finite", "check_model_outputs"]

#: Sample indices named in the message; the rest are counted.
SHOWN = 10


def check_finite(values: Tensor, what: str, fix: str, samples: Sequence[int] | None = None) -> None:
    """Raise ``ValueError`` naming the samples (rows of dim 0) of ``values`` that hold NaN or infinite values.

    One reduction over the batch when all is finite; the indices are only gathered on failure. ``samples`` names
    each row (default: its position); ``what`` says what ``values`` are, ``fix`` what to do about it.
    """
    if bool(torch.isfinite(values).all()):
        return
    rows = torch.nonzero(~torch.isfinite(values.reshape(len(values), -1)).all(1)).flatten().tolist()
    names = [samples[row] for row in rows] if samples is not None else rows
    shown = ", ".join(map(str, names[:SHOWN])) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
    raise ValueError(f"NaN or infinite values in {what} (sample{'s' if len(names) > 1 else ''} {shown}): {fix}")


def check_model_outputs(outputs: Tensor, samples: Sequence[int] | None = None,
                        what: str = "the model's outputs") -> None:
    """:func:`check_finite` for a model's outputs on finite inputs, where NaN or inf means a broken model."""
    check_finite(outputs, what, "the model is broken: damaged weights, or a training run that diverged", samples)
