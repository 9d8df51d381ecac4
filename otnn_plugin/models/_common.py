"""What every otnn-plugin model config records, on top of timm's usual fields."""
from __future__ import annotations

from typing import Any

import torch
from timm.models import DefaultCfg, generate_default_cfgs
from torch import nn

from ..hub import hub_id, resolve_weights
from ..labels import CELEBA_PAPER_ATTRIBUTES

PAPER = dict(
    paper_ids="arXiv:2206.06854",
    paper_name="On the explainable properties of 1-Lipschitz Neural Networks: An Optimal Transport Perspective",
)

#: Weights trained on our 10,000-image CelebA subset at half resolution carry this tag.
CELEBA_SUBSET_TAG = "subset_109x89"
#: The pretrained config of every model trained on that subset.
CELEBA_SUBSET = dict(
    num_classes=22, input_size=(3, 109, 89), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), fixed_input_size=True,
    label_names=CELEBA_PAPER_ATTRIBUTES, license="other",
    description="CelebA multilabel classifier of the paper's 22 attributes, inputs in [0, 1]; trained on a "
                "10,000-image subset at 109x89",
    notes=("CelebA-derived weights: non-commercial research use only (CelebA agreement)",),
)


def default_cfg(**kwargs: Any) -> dict[str, Any]:
    """A timm pretrained config: input size, mean/std, number of classes, licence and the paper id."""
    return {
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "first_conv": "features.0",
        "classifier": "head",
        **PAPER,
        **kwargs,
    }


def generate_cfgs(cfgs: dict[str, dict[str, Any]]) -> dict[str, DefaultCfg]:
    """timm's ``generate_default_cfgs``, each config's ``hf_hub_id`` naming where its weights are published
    (``otnn-plugin/<timm name, tag included>``) unless it sets ``hf_hub_id=None`` (no trained weights)."""
    return generate_default_cfgs({name: {"hf_hub_id": hub_id(name), **cfg} for name, cfg in cfgs.items()})


def pretrained_cfg_of(variant: str, kwargs: dict[str, Any]):
    """timm's pretrained config for ``variant``: the tag named by ``kwargs['pretrained_cfg']``, else the default."""
    from timm.models import get_pretrained_cfg

    tag = kwargs.get("pretrained_cfg") if isinstance(kwargs.get("pretrained_cfg"), str) else None
    return get_pretrained_cfg(f"{variant}.{tag}" if tag else variant)


def with_pretrained_file(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
    """When weights are asked for, set the pretrained config's ``file`` (which timm loads before ``hf_hub_id``) to
    the checked safetensors file that :func:`otnn_plugin.hub.resolve_weights` finds for its ``hf_hub_id``
    (``$OTNN_REGISTRY``, the hub, the checkout's ``registry/``). A ``file`` given in ``pretrained_cfg_overlay`` is
    left to timm.

    The registry folder is named after the full timm name, tag included (``otnn_vgg_celeba.subset_109x89``).
    """
    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
    if not pretrained or overlay.get("file"):
        return kwargs
    cfg = pretrained_cfg_of(variant, kwargs)
    full_name = f"{variant}.{cfg.tag}" if cfg is not None and cfg.tag else variant
    repo_id = overlay.get("hf_hub_id") or (cfg.hf_hub_id if cfg is not None else None)
    overlay["file"] = str(resolve_weights(full_name, repo_id))
    return {**kwargs, "pretrained_cfg_overlay": overlay}


#: Seeded random inputs that every loaded model must map to finite outputs (and, for an OTNN, gradients <= 1).
_CHECK_INPUTS = 4
_LIPSCHITZ_TOLERANCE = 1e-3


def check_pretrained(model: nn.Module, name: str, sample_shape: tuple[int, ...]) -> nn.Module:
    """``model`` after its weights were loaded, if it maps a few seeded random inputs of ``sample_shape`` to finite
    outputs and, for an OTNN, its input gradients have norm at most ``1 + 1e-3``; else a one-line ``ValueError``.

    The weights' checksum catches a damaged file; this catches weights that load but are not what the name says.
    """
    from ..lipschitz import explaining, input_gradient_norms, is_otnn

    x = torch.rand(_CHECK_INPUTS, *sample_shape, generator=torch.Generator().manual_seed(0))
    with explaining(model):
        with torch.no_grad():
            finite = bool(torch.isfinite(model(x)).all())
        largest = input_gradient_norms(model, x).max().item() if finite and is_otnn(model) else 0.0
    if not finite:
        problem = "NaN or infinite outputs"
    elif largest > 1 + _LIPSCHITZ_TOLERANCE:
        problem = f"input gradients of norm {largest:.4g} > 1, impossible for an OTNN"
    else:
        return model
    raise ValueError(f"{name}: the loaded weights give {problem} on random inputs; the weights file is damaged or "
                     "belongs to another model: restore or retrain it")
