"""Pretrained weights: the Hugging Face hub when reachable, else the matching ``registry/`` folder.

Every trained model lives in ``registry/<timm name>/`` in the hub layout (``config.json`` as timm's ``save_for_hf``
writes it, ``model.safetensors``, ``README.md`` model card) and is published as ``otnn-plugin/<timm name>``.
Weights are always read from safetensors, never from pickle.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import tempfile
import urllib.parse
from pathlib import Path

from torch import nn

__all__ = [
    "HUB_ORG", "registry_dir", "hub_id", "resolve_weights", "save_to_registry", "push_to_hub", "registry_models",
]

HUB_ORG = "otnn-plugin"
WEIGHTS = "model.safetensors"


def registry_dir() -> Path:
    """``$OTNN_REGISTRY`` if set, else the ``registry/`` folder of this checkout."""
    return Path(os.environ.get("OTNN_REGISTRY", Path(__file__).resolve().parents[1] / "registry"))


def hub_id(model_name: str) -> str:
    return f"{HUB_ORG}/{model_name}"


def registry_models() -> list[str]:
    """Names of the models with weights in the registry."""
    root = registry_dir()
    return sorted(p.parent.name for p in root.glob(f"*/{WEIGHTS}")) if root.is_dir() else []


def _hub_offline() -> bool:
    from .data.sources import offline_mode  # here, not at the top: it imports `datasets`

    return offline_mode() is not None


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout_s: float = 2.0) -> bool:
    """One TCP connection to the hub endpoint, so an offline machine falls back at once instead of retrying."""
    from huggingface_hub import constants

    if _hub_offline():
        return False
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def resolve_weights(model_name: str) -> Path:
    """Path of ``model_name``'s safetensors weights: downloaded from the hub, else from the registry.

    Raises ``FileNotFoundError`` naming both places when neither has them.
    """
    tried = []
    if hub_reachable():
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(hub_id(model_name), WEIGHTS, etag_timeout=5))
        except Exception as err:  # unknown repo, rate limit, broken connection: fall back to the registry
            tried.append(f"hub {hub_id(model_name)} ({type(err).__name__})")
    else:
        tried.append(f"hub {hub_id(model_name)} (offline or unreachable)")
    local = registry_dir() / model_name / WEIGHTS
    if local.is_file():
        return local
    tried.append(f"registry {local} (missing)")
    available = ", ".join(registry_models()) or "none"
    raise FileNotFoundError(
        f"no pretrained weights for {model_name!r}: tried {'; '.join(tried)}. "
        f"Models in the registry: {available}; train one with `otnn train --recipe ... --registry`."
    )


def save_to_registry(model: nn.Module, model_name: str, card: str, root: Path | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and the model card ``README.md`` to ``root/model_name``.

    The folder is written next to its destination and renamed into place, so it is complete or absent.
    """
    from timm.models import save_for_hf

    root = Path(root) if root is not None else registry_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / model_name
    staging = Path(tempfile.mkdtemp(prefix=f".{model_name}.", dir=root))
    try:
        save_for_hf(model, str(staging), model_config={"architecture": model_name.split(".")[0]},
                    safe_serialization=True)
        (staging / "README.md").write_text(card)
        config = json.loads((staging / "config.json").read_text())
        if not (staging / WEIGHTS).is_file() or config.get("architecture") != model_name.split(".")[0]:
            raise RuntimeError(f"timm's save_for_hf did not write {WEIGHTS} for {model_name}")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def push_to_hub(folder: Path, repo_id: str | None = None, private: bool = False) -> str:
    """Publish a registry folder as a hub model repository (needs network and a token; not run in CI)."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / WEIGHTS).is_file() or not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a registry folder: it needs config.json and {WEIGHTS}")
    repo_id = repo_id or hub_id(folder.name)
    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model")
    return repo_id
