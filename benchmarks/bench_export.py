"""Exported OTNN inference against its unconstrained twin (issue 3; target: <= 1.1x; paper Sec. 6: equal cost).

Candidates, all in eval mode under ``torch.inference_mode``, on one batch of random inputs:

* ``exported_otnn``: ``export_vanilla(otnn)``, plain ``Conv2d``/``Linear`` + GroupSort2 + L2-norm pooling;
* ``unconstrained``: the twin as it ships, ``Conv2d`` + ``BatchNorm`` + ``ReLU(inplace)`` + average pooling;
* ``unconstrained_folded``: the twin with each BatchNorm folded into the layer before it, its cheapest form;
* ``otnn_eval``: the OTNN itself in eval mode (its constrained weights are rebuilt at every call).

Run: ``python -m benchmarks.bench_export``.
"""
from __future__ import annotations

import copy

import timm
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

import otnn_plugin

from .report import print_result
from .schema import target
from .timing import compare, ratio_summary

COMMAND = "python -m benchmarks.bench_export"
PAIRS = {"vgg_fashionmnist_small": {}, "vgg_celeba_small": {"img_size": (109, 89)}}
SIZES = {"full": {"batch": 128, "repeats": 15}, "quick": {"batch": 2, "repeats": 3}}


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) where every BatchNorm that follows a Conv2d/Linear in a Sequential is
    folded into that layer's weights and replaced by ``Identity``."""
    model = copy.deepcopy(model).eval()
    for sequential in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for index in range(1, len(sequential)):
            layer, norm = sequential[index - 1], sequential[index]
            if isinstance(layer, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                sequential[index - 1] = fuse_conv_bn_eval(layer, norm)
            elif isinstance(layer, nn.Linear) and isinstance(norm, nn.BatchNorm1d):
                sequential[index - 1] = fuse_linear_bn_eval(layer, norm)
            else:
                continue
            sequential[index] = nn.Identity()
    return model


def _inference(model: nn.Module, x: torch.Tensor):
    def fn() -> None:
        with torch.inference_mode():
            model(x)
    return fn


def run(quick: bool = False, device: str = "cpu") -> dict:
    size = SIZES["quick" if quick else "full"]
    cases, targets = {}, []
    for pair, kwargs in PAIRS.items():
        torch.manual_seed(0)
        otnn = timm.create_model(f"otnn_{pair}", **kwargs).to(device)
        twin = timm.create_model(f"unconstrained_{pair}", **kwargs).to(device).eval()
        exported = otnn_plugin.export_vanilla(otnn)
        x = torch.rand(size["batch"], otnn.pretrained_cfg["input_size"][0], *otnn.img_size, device=device)
        stats = compare({"exported_otnn": _inference(exported, x), "unconstrained": _inference(twin, x),
                         "unconstrained_folded": _inference(fold_batchnorm(twin), x),
                         "otnn_eval": _inference(otnn.eval(), x)}, repeats=size["repeats"], device=device)
        cases[pair] = {"stats": stats, "ratios": {
            "exported_over_unconstrained": ratio_summary(stats, "exported_otnn", "unconstrained"),
            "exported_over_folded": ratio_summary(stats, "exported_otnn", "unconstrained_folded"),
            "otnn_eval_over_exported": ratio_summary(stats, "otnn_eval", "exported_otnn"),
        }}
        shape = "x".join(map(str, otnn.img_size))
        targets += [
            target(pair, "exported_over_unconstrained", f"exported OTNN / unconstrained twin, inference, "
                   f"`{pair}` at {shape}, batch {size['batch']}", "paper: equal cost", "<=", 1.1),
            target(pair, "exported_over_folded", f"exported OTNN / twin with BatchNorm folded, `{pair}`"),
        ]
    return {"name": "export_inference", "command": COMMAND,
            "params": {"batch": size["batch"], "device": device, "repeats": size["repeats"]},
            "cases": cases, "targets": targets}


if __name__ == "__main__":
    print_result(run())
