"""What a run records about where it ran: Python and package versions, the device and its name, the threads."""
from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path
from typing import Any

import torch

__all__ = ["cpu_name", "environment"]

#: The packages that decide what a training or an evaluation computes.
PACKAGES = ("otnn-plugin", "torch", "timm", "captum", "quantus", "datasets", "deel-torchlip", "numpy")


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows, else ``"cpu"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def environment(device: torch.device) -> dict[str, Any]:
    """Versions of Python and :data:`PACKAGES` (``None`` if absent), the device, its name and torch's threads."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    versions["torch"] = torch.__version__  # with its build label (+cu130, +cpu), which metadata drops
    from . import __version__  # also when run from a source tree that was never installed (no metadata)

    versions["otnn-plugin"] = __version__
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"python": platform.python_version(), **versions, "device": str(device), "device_name": name,
            "threads": torch.get_num_threads()}
