"""A fingerprint of tensors: which weights a checkpoint holds, which weights an evaluation scored."""
from __future__ import annotations

import hashlib
from typing import Mapping

import torch
from torch import nn

__all__ = ["tensors_sha256", "weights_fingerprint"]


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hex sha256 over the names and bytes of ``tensors``, in name order (independent of device and strides)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().contiguous().cpu().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def weights_fingerprint(model: nn.Module) -> str:
    """:func:`tensors_sha256` of ``model``'s state dict: equal fingerprints, equal weights and buffers."""
    return tensors_sha256(model.state_dict())
