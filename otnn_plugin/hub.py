"""Pretrained weights: ``$OTNN_REGISTRY``, else the Hugging Face hub when reachable, else the checkout's registry.

Every trained model lives in ``registry/<timm name>/`` in the hub layout (``config.json`` as timm's ``save_for_hf``
writes it, ``model.safetensors``, ``README.md`` model card) and is published as ``otnn-plugin/<timm name>``, the
``hf_hub_id`` of its timm pretrained config. ``$OTNN_REGISTRY`` names another folder in that layout, read first and
instead of the checkout's ``registry/``; an installed wheel has no registry of its own.
Weights are always read from safetensors, never from pickle, and checked against the sha256 that ``config.json``
records (``weights_sha256``) before they are loaded: a damaged or truncated file fails in one line.
"""
from __future__ import annotations

import functools
import hashlib
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
    "file_sha256", "verify_weights",
]

HUB_ORG = "otnn-plugin"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
#: The ``config.json`` key holding the sha256 of ``model.safetensors``.
SHA256_KEY = "weights_sha256"
#: The variable naming a registry folder that overrides the checkout's.
REGISTRY_ENV = "OTNN_REGISTRY"


def registry_dir() -> Path | None:
    """``$OTNN_REGISTRY`` if set, else the ``registry/`` folder of the source checkout this package runs from, else
    None (an installed wheel)."""
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    checkout = Path(__file__).resolve().parents[1]
    return checkout / "registry" if (checkout / "pyproject.toml").is_file() else None


def hub_id(model_name: str) -> str:
    return f"{HUB_ORG}/{model_name}"


def registry_models() -> list[str]:
    """Names of the models with weights in the registry."""
    root = registry_dir()
    return sorted(p.parent.name for p in root.glob(f"*/{WEIGHTS}")) if root is not None and root.is_dir() else []


def _offline_mode() -> str | None:
    from .data.sources import offline_mode  # here, not at the top: it imports `datasets`

    return offline_mode()


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout_s: float = 2.0) -> bool:
    """One TCP connection to the hub endpoint, so an offline machine falls back at once instead of retrying."""
    from huggingface_hub import constants

    if _offline_mode():
        return False
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(weights: Path, config: Path) -> Path:
    """``weights`` if its sha256 is the one ``config`` records; a one-line ``ValueError`` saying how to restore it
    otherwise. A config without a checksum (older folders) is accepted as it is."""
    recorded = json.loads(config.read_text()).get(SHA256_KEY) if config.is_file() else None
    if recorded is None:
        return weights
    actual = file_sha256(weights)
    if actual != recorded:
        raise ValueError(
            f"{weights} is damaged: its sha256 {actual[:16]}... differs from {recorded[:16]}... recorded in {config} "
            f"({weights.stat().st_size} bytes); restore it (`git checkout -- {weights.parent}` for the registry, or "
            "delete it to download it again) or retrain the model"
        )
    return weights


def resolve_weights(model_name: str, repo_id: str | None = None) -> Path:
    """Path of ``model_name``'s safetensors weights, checked against their recorded sha256, from the first place
    holding them: ``$OTNN_REGISTRY``, the hub repository ``repo_id`` (default ``otnn-plugin/<model_name>``) when
    reachable, the checkout's ``registry/``.

    Raises a one-line ``FileNotFoundError`` naming the places tried and the fix, ``ValueError`` for damaged weights.
    """
    repo_id = repo_id or hub_id(model_name)
    registry, override = registry_dir(), bool(os.environ.get(REGISTRY_ENV))
    local = registry / model_name / WEIGHTS if registry is not None else None
    if override and local.is_file():
        return verify_weights(local, local.with_name(CONFIG))
    tried = [f"{REGISTRY_ENV}={registry} (no {model_name}/{WEIGHTS})"] if override else []
    reachable = hub_reachable()
    if reachable:
        from huggingface_hub import hf_hub_download

        try:
            weights = Path(hf_hub_download(repo_id, WEIGHTS, etag_timeout=5))
            return verify_weights(weights, Path(hf_hub_download(repo_id, CONFIG, etag_timeout=5)))
        except ValueError:
            raise
        except Exception as err:  # unknown repo, rate limit, broken connection: fall back to the registry
            tried.append(f"hub {repo_id} ({type(err).__name__})")
    else:
        offline = _offline_mode()
        tried.append(f"hub {repo_id} ({f'offline: {offline}' if offline else 'unreachable'})")
    if local is not None and not override:
        if local.is_file():
            return verify_weights(local, local.with_name(CONFIG))
        tried.append(f"registry {local} (missing)")
    if registry is None:
        online = "" if reachable else " or go online"
        fix = (f"this installed package has no registry: set {REGISTRY_ENV} to a folder holding the registry "
               f"(<model>/{WEIGHTS} and {CONFIG}, as the repository's registry/){online}")
    else:
        fix = (f"models in the registry: {', '.join(registry_models()) or 'none'}; train one with "
               "`otnn train --recipe ... --registry`")
    raise FileNotFoundError(f"no pretrained weights for {model_name!r}: tried {'; '.join(tried)}; {fix}")


def save_to_registry(model: nn.Module, model_name: str, card: str, root: Path) -> Path:
    """Write ``config.json``, ``model.safetensors`` and the model card ``README.md`` to ``root/model_name``.

    The folder is written next to its destination and renamed into place, so it is complete or absent.
    """
    from timm.models import save_for_hf

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / model_name
    staging = Path(tempfile.mkdtemp(prefix=f".{model_name}.", dir=root))
    try:
        save_for_hf(model, str(staging), model_config={"architecture": model_name.split(".")[0]},
                    safe_serialization=True)
        config = json.loads((staging / CONFIG).read_text())
        if not (staging / WEIGHTS).is_file() or config.get("architecture") != model_name.split(".")[0]:
            raise RuntimeError(f"timm's save_for_hf did not write {WEIGHTS} for {model_name}")
        config[SHA256_KEY] = file_sha256(staging / WEIGHTS)
        (staging / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        (staging / "README.md").write_text(f"{card.rstrip()}\n\n## Weights\n\n`{WEIGHTS}`, sha256 "
                                           f"`{config[SHA256_KEY]}` (checked on every load).\n")
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
