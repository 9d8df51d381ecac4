"""Training checkpoints in safetensors, written atomically: a complete file or the previous one, never half."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .._files import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint"]

CHECKPOINT = "checkpoint.safetensors"


def save_checkpoint(run_dir: Path, epoch: int, model: nn.Module, objective: nn.Module,
                    optimizer: torch.optim.Optimizer, meta: dict[str, Any]) -> Path:
    """Model, loss (learnable margins) and optimiser state after ``epoch`` complete epochs."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"loss.{k}": v for k, v in objective.state_dict().items()})
    optim_state = optimizer.state_dict()
    for index, state in optim_state["state"].items():
        for key, value in state.items():
            tensors[f"optimizer.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = {
        "epoch": str(epoch),
        "param_groups": json.dumps(optim_state["param_groups"]),
        "meta": json.dumps(meta),
    }
    path = Path(run_dir) / CHECKPOINT
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def load_checkpoint(run_dir: Path, model: nn.Module, objective: nn.Module,
                    optimizer: torch.optim.Optimizer) -> int:
    """Restore the states saved by :func:`save_checkpoint`; returns the number of completed epochs."""
    from safetensors import safe_open

    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path} does not exist")
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    device = next(model.parameters()).device

    def section(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    model.load_state_dict({k: v.to(device) for k, v in section("model.").items()})
    objective.load_state_dict({k: v.to(device) for k, v in section("loss.").items()})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in section("optimizer.").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
    return int(metadata["epoch"])
