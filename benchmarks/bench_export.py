"""Exported OTNN inference against its unconstrained twin (issue 3; target: <= 1.1x; paper Sec. 6: equal cost).

Run: ``python -m benchmarks.bench_export``. Both models in eval mode under ``torch.inference_mode``.
"""
from __future__ import annotations

import timm
import torch

import otnn_plugin

from .timing import compare, print_table, ratio

PAIRS = {"vgg_fashionmnist_small": {}, "vgg_celeba_small": {"img_size": (109, 89)}}


def run(device: str = "cpu", batch: int = 128, repeats: int = 15) -> list[dict]:
    results = []
    for pair, kwargs in PAIRS.items():
        otnn = timm.create_model(f"otnn_{pair}", **kwargs).to(device)
        twin = timm.create_model(f"unconstrained_{pair}", **kwargs).to(device).eval()
        exported = otnn_plugin.export_vanilla(otnn)
        x = torch.rand(batch, *otnn.pretrained_cfg["input_size"][:1], *otnn.img_size, device=device)

        def forward(model):
            def fn():
                with torch.inference_mode():
                    model(x)
            return fn

        stats = compare({"exported_otnn": forward(exported), "unconstrained": forward(twin),
                         "otnn_eval": forward(otnn.eval())}, repeats=repeats, device=device)
        results.append({
            "name": f"inference_{pair}", "batch": batch, "device": device, "stats": stats,
            "ratios": {"exported_over_unconstrained": ratio(stats, "exported_otnn", "unconstrained"),
                       "otnn_eval_over_exported": ratio(stats, "otnn_eval", "exported_otnn")},
            "target": "exported_over_unconstrained <= 1.1",
        })
    return results


if __name__ == "__main__":
    for result in run():
        print_table(f"{result['name']}, batch {result['batch']}", result["stats"])
        for key, value in result["ratios"].items():
            print(f"  {key:<30} {value:6.2f}x")
