"""Side-by-side timing: candidates run interleaved, so machine noise hits them alike; ratios of medians."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def _sync(device: str | torch.device | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def compare(
    candidates: dict[str, Callable[[], object]],
    repeats: int = 15,
    warmup: int = 3,
    device: str | torch.device | None = None,
) -> dict[str, dict[str, float]]:
    """Time each zero-argument callable ``repeats`` times, interleaved round-robin.

    Returns ``{name: {"median_s", "min_s", "max_s", "iqr_s"}}``; compare candidates with :func:`ratio`.
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            samples[name].append(time.perf_counter() - start)
    stats = {}
    for name, times in samples.items():
        q1, _, q3 = statistics.quantiles(times, n=4)
        stats[name] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "iqr_s": q3 - q1}
    return stats


def ratio(stats: dict[str, dict[str, float]], numerator: str, denominator: str) -> float:
    """``median(numerator) / median(denominator)``: above 1 means the numerator is slower."""
    return stats[numerator]["median_s"] / stats[denominator]["median_s"]


def print_table(title: str, stats: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    for name, s in stats.items():
        print(f"  {name:<32} median {s['median_s'] * 1e3:9.2f} ms   IQR {s['iqr_s'] * 1e3:7.2f} ms")
