"""What an explainer is given: a batch of inputs, and Captum-style targets naming the output to explain."""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import Tensor

from .._finite import check_finite

#: ``None`` (single-output model), one index for the whole batch, or one index per sample.
Target = Union[None, int, list[int], np.ndarray, Tensor]


def check_inputs(inputs: object, model: object = None) -> Tensor:
    """``inputs`` must be one floating-point tensor of finite values with a non-empty batch dimension.

    A timm ``model`` states the shape of one input (``pretrained_cfg["input_size"]``, ``(C, H, W)``): inputs with
    that many dimensions lack the batch one.
    """
    if not isinstance(inputs, Tensor):
        raise ValueError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
    if size is not None and inputs.dim() == len(size):
        image = "x".join(map(str, size))
        raise ValueError(f"inputs of shape {tuple(inputs.shape)} have no batch dimension: {type(model).__name__} "
                         f"takes (N, C, H, W) batches of {image} images; for one image, pass inputs[None]")
    if inputs.dim() < 2 or inputs.shape[0] == 0 or not inputs.is_floating_point():
        raise ValueError(
            f"inputs must be a floating-point batch (N, ...) with N >= 1, got {inputs.dtype} of shape "
            f"{tuple(inputs.shape)}"
        )
    check_finite(inputs, "inputs", "drop or repair those samples")
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
