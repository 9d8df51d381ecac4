"""What an explainer is given: a batch of inputs, and Captum-style targets naming the output to explain."""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import Tensor

#: ``None`` (single-output model), one index for the whole batch, or one index per sample.
Target = Union[None, int, list[int], np.ndarray, Tensor]


def check_inputs(inputs: object) -> Tensor:
    """``inputs`` must be one floating-point tensor with a non-empty batch dimension."""
    if not isinstance(inputs, Tensor):
        raise ValueError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if inputs.dim() < 2 or inputs.shape[0] == 0 or not inputs.is_floating_point():
        raise ValueError(
            f"inputs must be a floating-point batch (N, ...) with N >= 1, got {inputs.dtype} of shape "
            f"{tuple(inputs.shape)}"
        )
    return inputs


def format_target(target: Target, batch_size: int, device: torch.device) -> Tensor | None:
    """``target`` as a ``(batch_size,)`` int64 tensor on ``device``; ``None`` stays ``None``."""
    if target is None:
        return None
    if isinstance(target, tuple):
        raise ValueError("tuple targets (one index per output dimension) are not supported: models here return (N, K)")
    indices = torch.as_tensor(target, device=device)
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise ValueError(f"target must hold integer output indices, got dtype {indices.dtype}: convert it to int")
    if indices.numel() == 1:
        return indices.reshape(()).long().expand(batch_size)
    if indices.shape != (batch_size,):
        raise ValueError(
            f"target must be one index or one index per sample ({batch_size}), got shape {tuple(indices.shape)}"
        )
    return indices.long()


def select_scores(output: Tensor, target: Tensor | None) -> Tensor:
    """``output[i, target[i]]`` for every sample, shape ``(N,)``; a single-output model needs no target."""
    output = output.reshape(output.shape[0], -1)
    n_outputs = output.shape[1]
    if target is None:
        if n_outputs != 1:
            raise ValueError(
                f"the model returns {n_outputs} outputs per sample: pass target= (the class or label to explain)"
            )
        return output[:, 0]
    if target.min() < 0 or target.max() >= n_outputs:
        raise ValueError(
            f"target indices must lie in [0, {n_outputs}) for a model with {n_outputs} outputs, "
            f"got values from {target.min().item()} to {target.max().item()}"
        )
    return output.gather(1, target[:, None]).squeeze(1)
