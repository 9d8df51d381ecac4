"""Our GroupSort2 against deel-torchlip's, with ReLU as the floor (issue 3; target: >= 4x faster).

One forward + backward of an activation map the size of the first block of the full Fashion-MNIST network
(Table 7) at batch 128. Run: ``python -m benchmarks.bench_groupsort``.
"""
from __future__ import annotations

import torch
from deel.torchlip import GroupSort2 as TorchlipGroupSort2

from otnn_plugin.layers import GroupSort2

from .report import print_result
from .schema import target
from .timing import compare, ratio_summary

COMMAND = "python -m benchmarks.bench_groupsort"
SIZES = {"full": {"shape": (128, 96, 28, 28), "repeats": 15}, "quick": {"shape": (4, 8, 6, 6), "repeats": 3}}


def run(quick: bool = False, device: str = "cpu") -> dict:
    size = SIZES["quick" if quick else "full"]
    x = torch.randn(size["shape"], device=device)
    grad = torch.randn(size["shape"], device=device)

    def step(activation):
        def fn():
            inp = x.detach().requires_grad_(True)
            activation(inp).backward(grad)
        return fn

    stats = compare(
        {"relu": step(torch.relu), "ours": step(GroupSort2()), "torchlip": step(TorchlipGroupSort2())},
        repeats=size["repeats"], device=device,
    )
    return {
        "name": "groupsort2",
        "command": COMMAND,
        "params": {"shape": list(size["shape"]), "device": device, "repeats": size["repeats"]},
        "cases": {"fwd_bwd": {"stats": stats, "ratios": {
            "torchlip_over_ours": ratio_summary(stats, "torchlip", "ours"),
            "ours_over_relu": ratio_summary(stats, "ours", "relu"),
            "torchlip_over_relu": ratio_summary(stats, "torchlip", "relu"),
        }}},
        "targets": [
            target("fwd_bwd", "torchlip_over_ours", "deel-torchlip GroupSort2 / ours, forward + backward "
                   f"({'x'.join(map(str, size['shape']))})", "torchlip: about 8x a ReLU", ">=", 4.0),
            target("fwd_bwd", "ours_over_relu", "our GroupSort2 / ReLU, forward + backward"),
        ],
    }


if __name__ == "__main__":
    print_result(run())
