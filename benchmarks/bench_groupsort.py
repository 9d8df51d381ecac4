"""Our GroupSort2 against deel-torchlip's, with ReLU as the floor (issue 3; target: >= 4x faster).

Run: ``python -m benchmarks.bench_groupsort``.
"""
from __future__ import annotations

import torch
from deel.torchlip import GroupSort2 as TorchlipGroupSort2

from otnn_plugin.layers import GroupSort2

from .timing import compare, print_table, ratio


def run(device: str = "cpu", shape: tuple[int, ...] = (128, 96, 28, 28), repeats: int = 15) -> dict:
    """Forward + backward of one activation map the size of the first Fashion-MNIST block at batch 128."""
    x = torch.randn(shape, device=device)
    grad = torch.randn(shape, device=device)

    def step(activation):
        def fn():
            inp = x.detach().requires_grad_(True)
            activation(inp).backward(grad)
        return fn

    stats = compare(
        {"relu": step(torch.relu), "ours": step(GroupSort2()), "torchlip": step(TorchlipGroupSort2())},
        repeats=repeats, device=device,
    )
    return {
        "name": "groupsort2_fwd_bwd",
        "shape": list(shape),
        "device": device,
        "stats": stats,
        "ratios": {
            "torchlip_over_ours": ratio(stats, "torchlip", "ours"),
            "ours_over_relu": ratio(stats, "ours", "relu"),
            "torchlip_over_relu": ratio(stats, "torchlip", "relu"),
        },
        "target": "torchlip_over_ours >= 4",
    }


if __name__ == "__main__":
    result = run()
    print_table(f"GroupSort2 forward+backward, input {result['shape']}", result["stats"])
    for key, value in result["ratios"].items():
        print(f"  {key:<24} {value:6.2f}x")
