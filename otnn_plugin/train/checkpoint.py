"""Training checkpoints in safetensors, written atomically: a complete file or the previous one, never half.

Each checkpoint records the run's resolved settings and a sha256 of its tensors. Resuming checks both: damaged
bytes, or settings that differ from the run's (another recipe, learning rate, data limit, seed, model argument...),
are refused in one line. Only ``epochs`` may change on resume (:data:`RESUMABLE`), to extend or shorten a run, and
the recipe's ``description``, which is prose (a recipe whose default changed may be resumed with the old default
passed as a flag).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .._files import atomic_write
from .._fingerprint import tensors_sha256

__all__ = ["save_checkpoint", "load_checkpoint", "RESUMABLE"]

CHECKPOINT = "checkpoint.safetensors"
#: Settings that may differ between a run and its resumption (the change is logged).
RESUMABLE = frozenset({"epochs", "description"})


def _settings_differences(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{setting: (saved, now)}`` for every saved setting that differs now, ``RESUMABLE`` ones included (settings
    newer than the checkpoint's version of the recipe are not compared)."""
    return {key: (saved[key], now.get(key)) for key in sorted(saved)
            if _comparable(saved[key]) != _comparable(now.get(key))}


def _comparable(value: Any) -> str:
    """``value`` as sorted JSON with every number a float, so that ``lam: 300`` on the command line and
    ``lam: 300.0`` in a recipe file are the same setting (booleans stay booleans)."""
    def floats(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: floats(entry) for key, entry in item.items()}
        if isinstance(item, (list, tuple)):
            return [floats(entry) for entry in item]
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            return float(item)
        return item

    return json.dumps(floats(value), sort_keys=True)


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
        "sha256": tensors_sha256(tensors),
        "param_groups": json.dumps(optim_state["param_groups"]),
        "meta": json.dumps(meta),
    }
    path = Path(run_dir) / CHECKPOINT
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def load_checkpoint(run_dir: Path, model: nn.Module, objective: nn.Module,
                    optimizer: torch.optim.Optimizer, recipe: dict[str, Any] | None = None
                    ) -> tuple[int, dict[str, tuple[Any, Any]]]:
    """Restore the states saved by :func:`save_checkpoint`: the number of completed epochs, and the resumable
    settings that changed (``{name: (saved, now)}``).

    ``recipe`` (the resolved settings of the resumed run) must equal the saved run's, :data:`RESUMABLE` aside.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from: {path} does not exist")
    try:
        with safe_open(str(path), "pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"cannot resume from {path}: the file is not a readable checkpoint ({err}); "
                         "start a new --out") from None
    if metadata.get("sha256") not in (None, tensors_sha256(tensors)):
        raise ValueError(f"cannot resume from {path}: its tensors do not match the sha256 it recorded (damaged "
                         "file); start a new --out")
    changed = {}
    if recipe is not None:
        saved = json.loads(metadata.get("meta", "{}")).get("recipe", {})
        changed = _settings_differences(saved, recipe)
        fixed = {key: pair for key, pair in changed.items() if key not in RESUMABLE}
        if fixed:
            listed = "; ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in fixed.items())
            raise ValueError(f"cannot resume {run_dir} with other settings than its run: {listed}; resume with "
                             "the run's settings, or start a new --out")
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
    return int(metadata["epoch"]), changed
